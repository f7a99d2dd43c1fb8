"""The store's tables (SQLAlchemy 2 declarative). Schema changes go through alembic migrations
(`migrations/versions`); `Store.upgrade()` brings any database to head."""

from datetime import UTC, datetime

from sqlalchemy import Boolean, DateTime, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0, tzinfo=None)


class Base(DeclarativeBase):
    pass


class GlobalRevision(Base):
    """One row: the revision of the whole logical model. Every change bumps it in its own transaction,
    so the compiler and agents can ask for "everything since revision N"."""

    __tablename__ = "global_revision"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class Tag(Base):
    __tablename__ = "tags"
    resource_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tag: Mapped[str] = mapped_column(String(255), primary_key=True)


class Network(Base):
    __tablename__ = "networks"
    __table_args__ = (
        UniqueConstraint("network_type", "physical_network", "segmentation_id", name="uniq_network_segment"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(String(255), default="")
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    router_external: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE")
    mtu: Mapped[int] = mapped_column(Integer)
    port_security_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    network_type: Mapped[str] = mapped_column(String(16))
    physical_network: Mapped[str] = mapped_column(String(64), default="")  # "" for overlays (unique index)
    segmentation_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    control_plane: Mapped[str] = mapped_column(String(16), default="controller")
    replication: Mapped[str] = mapped_column(String(16), default="ingress")
    multicast_group: Mapped[str | None] = mapped_column(String(64), nullable=True)
    arp_suppression: Mapped[bool] = mapped_column(Boolean, default=True)
    revision_number: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    tags: Mapped[list[Tag]] = relationship(
        Tag,
        primaryjoin="foreign(Tag.resource_id) == Network.id",
        cascade="all, delete-orphan",
        lazy="selectin",
    )
