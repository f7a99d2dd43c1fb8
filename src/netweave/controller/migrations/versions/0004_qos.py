"""QoS policies, bandwidth-limit and DSCP-marking rules; qos_policy_id on networks and ports

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "qos_policies",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project_id", sa.String(255), nullable=False, index=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.String(255), nullable=False),
        sa.Column("shared", sa.Boolean, nullable=False),
        sa.Column("is_default", sa.Boolean, nullable=False),
        sa.Column("revision_number", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "qos_rules",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("policy_id", sa.String(36), sa.ForeignKey("qos_policies.id"), nullable=False, index=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("max_kbps", sa.Integer, nullable=True),
        sa.Column("max_burst_kbps", sa.Integer, nullable=True),
        sa.Column("direction", sa.String(8), nullable=True),
        sa.Column("dscp_mark", sa.Integer, nullable=True),
    )
    with op.batch_alter_table("networks") as batch:
        batch.add_column(sa.Column("qos_policy_id", sa.String(36), nullable=True))
    with op.batch_alter_table("ports") as batch:
        batch.add_column(sa.Column("qos_policy_id", sa.String(36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ports") as batch:
        batch.drop_column("qos_policy_id")
    with op.batch_alter_table("networks") as batch:
        batch.drop_column("qos_policy_id")
    op.drop_table("qos_rules")
    op.drop_table("qos_policies")
