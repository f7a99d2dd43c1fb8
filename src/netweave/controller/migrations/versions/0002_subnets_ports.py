"""subnets, ports and their IP allocations

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subnets",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("network_id", sa.String(36), sa.ForeignKey("networks.id"), nullable=False, index=True),
        sa.Column("project_id", sa.String(255), nullable=False, index=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.String(255), nullable=False),
        sa.Column("ip_version", sa.Integer, nullable=False),
        sa.Column("cidr", sa.String(64), nullable=False),
        sa.Column("gateway_ip", sa.String(64), nullable=True),
        sa.Column("enable_dhcp", sa.Boolean, nullable=False),
        sa.Column("ipv6_ra_mode", sa.String(32), nullable=True),
        sa.Column("ipv6_address_mode", sa.String(32), nullable=True),
        sa.Column("allocation_pools", sa.JSON, nullable=False),
        sa.Column("dns_nameservers", sa.JSON, nullable=False),
        sa.Column("host_routes", sa.JSON, nullable=False),
        sa.Column("revision_number", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "ports",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("network_id", sa.String(36), sa.ForeignKey("networks.id"), nullable=False, index=True),
        sa.Column("project_id", sa.String(255), nullable=False, index=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.String(255), nullable=False),
        sa.Column("admin_state_up", sa.Boolean, nullable=False),
        sa.Column("mac_address", sa.String(17), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("device_id", sa.String(255), nullable=False, index=True),
        sa.Column("device_owner", sa.String(255), nullable=False),
        sa.Column("binding_host_id", sa.String(255), nullable=False, index=True),
        sa.Column("binding_vnic_type", sa.String(64), nullable=False),
        sa.Column("binding_profile", sa.JSON, nullable=False),
        sa.Column("port_security_enabled", sa.Boolean, nullable=False),
        sa.Column("security_groups", sa.JSON, nullable=False),
        sa.Column("allowed_address_pairs", sa.JSON, nullable=False),
        sa.Column("revision_number", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("network_id", "mac_address", name="uniq_port_mac_per_network"),
    )
    op.create_table(
        "ip_allocations",
        sa.Column("subnet_id", sa.String(36), sa.ForeignKey("subnets.id"), primary_key=True),
        sa.Column("ip_address", sa.String(64), primary_key=True),
        sa.Column("port_id", sa.String(36), sa.ForeignKey("ports.id"), nullable=False, index=True),
        sa.Column("network_id", sa.String(36), nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("ip_allocations")
    op.drop_table("ports")
    op.drop_table("subnets")
