"""networks, tags and the global revision

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "global_revision",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("value", sa.Integer, nullable=False),
    )
    op.create_table(
        "tags",
        sa.Column("resource_id", sa.String(36), primary_key=True),
        sa.Column("tag", sa.String(255), primary_key=True),
    )
    op.create_table(
        "networks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project_id", sa.String(255), nullable=False, index=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.String(255), nullable=False),
        sa.Column("admin_state_up", sa.Boolean, nullable=False),
        sa.Column("shared", sa.Boolean, nullable=False),
        sa.Column("router_external", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("mtu", sa.Integer, nullable=False),
        sa.Column("port_security_enabled", sa.Boolean, nullable=False),
        sa.Column("network_type", sa.String(16), nullable=False),
        sa.Column("physical_network", sa.String(64), nullable=False),
        sa.Column("segmentation_id", sa.Integer, nullable=True),
        sa.Column("control_plane", sa.String(16), nullable=False),
        sa.Column("replication", sa.String(16), nullable=False),
        sa.Column("multicast_group", sa.String(64), nullable=True),
        sa.Column("arp_suppression", sa.Boolean, nullable=False),
        sa.Column("revision_number", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint(
            "network_type", "physical_network", "segmentation_id", name="uniq_network_segment"
        ),
    )


def downgrade() -> None:
    op.drop_table("networks")
    op.drop_table("tags")
    op.drop_table("global_revision")
