"""The store's tables (SQLAlchemy 2 declarative). Schema changes go through alembic migrations
(`migrations/versions`); `Store.upgrade()` brings any database to head."""

from datetime import UTC, datetime

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column, relationship


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


class Revisioned:
    """Neutron's standard attributes: a per-resource revision number and timestamps."""

    revision_number: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Tagged:
    """Resources with tags (rows of `tags` keyed by the resource's id)."""

    @declared_attr
    def tags(cls) -> Mapped[list[Tag]]:  # noqa: N805 - declared_attr takes the class
        name = cls.__name__  # type: ignore[attr-defined]  # declared_attr hands over the mapped class
        return relationship(
            Tag,
            primaryjoin=f"foreign(Tag.resource_id) == {name}.id",
            cascade="all, delete-orphan",
            lazy="selectin",
            overlaps="tags",
        )


class Network(Tagged, Revisioned, Base):
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
    qos_policy_id: Mapped[str | None] = mapped_column(String(36), nullable=True)


class Subnet(Tagged, Revisioned, Base):
    """An address range on a network. Pools, DNS servers and host routes are small ordered lists that are
    read and written whole with their subnet, so they are JSON columns."""

    __tablename__ = "subnets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id"), index=True)
    project_id: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(String(255), default="")
    ip_version: Mapped[int] = mapped_column(Integer)
    cidr: Mapped[str] = mapped_column(String(64))
    gateway_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    enable_dhcp: Mapped[bool] = mapped_column(Boolean, default=True)
    ipv6_ra_mode: Mapped[str | None] = mapped_column(String(32), nullable=True)
    ipv6_address_mode: Mapped[str | None] = mapped_column(String(32), nullable=True)
    allocation_pools: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    dns_nameservers: Mapped[list[str]] = mapped_column(JSON, default=list)
    host_routes: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)


class Port(Tagged, Revisioned, Base):
    __tablename__ = "ports"
    __table_args__ = (UniqueConstraint("network_id", "mac_address", name="uniq_port_mac_per_network"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id"), index=True)
    project_id: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(String(255), default="")
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    mac_address: Mapped[str] = mapped_column(String(17))
    status: Mapped[str] = mapped_column(String(16), default="DOWN")
    #: why the port is ERROR when the controller could not bind it (shown in binding:vif_details)
    status_reason: Mapped[str | None] = mapped_column(String(255), nullable=True)
    device_id: Mapped[str] = mapped_column(String(255), default="", index=True)
    device_owner: Mapped[str] = mapped_column(String(255), default="")
    binding_host_id: Mapped[str] = mapped_column(String(255), default="", index=True)
    binding_vnic_type: Mapped[str] = mapped_column(String(64), default="normal")
    binding_profile: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    port_security_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    security_groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    allowed_address_pairs: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    qos_policy_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    fixed_ips: Mapped[list["IPAllocation"]] = relationship(
        "IPAllocation", cascade="all, delete-orphan", lazy="selectin", order_by="IPAllocation.ip_address"
    )


class IPAllocation(Base):
    """One fixed IP of one port. The primary key (subnet, address) is what makes two concurrent
    requests unable to take the same address: the second insert fails and is retried with another."""

    __tablename__ = "ip_allocations"

    subnet_id: Mapped[str] = mapped_column(ForeignKey("subnets.id"), primary_key=True)
    ip_address: Mapped[str] = mapped_column(String(64), primary_key=True)
    port_id: Mapped[str] = mapped_column(ForeignKey("ports.id"), index=True)
    network_id: Mapped[str] = mapped_column(String(36), index=True)


class SecurityGroup(Tagged, Revisioned, Base):
    __tablename__ = "security_groups"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(String(255), default="")
    stateful: Mapped[bool] = mapped_column(Boolean, default=True)
    rules: Mapped[list["SecurityGroupRule"]] = relationship(
        "SecurityGroupRule",
        cascade="all, delete-orphan",
        lazy="selectin",
        order_by="SecurityGroupRule.created_at",
        foreign_keys="SecurityGroupRule.security_group_id",
    )


class SecurityGroupRule(Revisioned, Base):
    __tablename__ = "security_group_rules"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    security_group_id: Mapped[str] = mapped_column(ForeignKey("security_groups.id"), index=True)
    project_id: Mapped[str] = mapped_column(String(255))
    direction: Mapped[str] = mapped_column(String(8))
    ethertype: Mapped[str] = mapped_column(String(8))
    protocol: Mapped[str | None] = mapped_column(String(40), nullable=True)
    port_range_min: Mapped[int | None] = mapped_column(Integer, nullable=True)
    port_range_max: Mapped[int | None] = mapped_column(Integer, nullable=True)
    remote_ip_prefix: Mapped[str | None] = mapped_column(String(64), nullable=True)
    remote_group_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    description: Mapped[str] = mapped_column(String(255), default="")


class QosPolicy(Tagged, Revisioned, Base):
    __tablename__ = "qos_policies"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(String(255), default="")
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    rules: Mapped[list["QosRule"]] = relationship(
        "QosRule", cascade="all, delete-orphan", lazy="selectin", order_by="QosRule.id"
    )


class QosRule(Base):
    """Bandwidth-limit and DSCP-marking rules share a table; `type` says which columns apply."""

    __tablename__ = "qos_rules"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    policy_id: Mapped[str] = mapped_column(ForeignKey("qos_policies.id"), index=True)
    type: Mapped[str] = mapped_column(String(32))
    max_kbps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_burst_kbps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    direction: Mapped[str | None] = mapped_column(String(8), nullable=True)
    dscp_mark: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Router(Tagged, Revisioned, Base):
    """A tenant routing domain. Its interfaces and gateway are ports (device_id = the router), as in
    Neutron; `l3_vni` is the VNI of its routing domain for symmetric IRB (issue 7)."""

    __tablename__ = "routers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(String(255), default="")
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE")
    gw_network_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    enable_snat: Mapped[bool] = mapped_column(Boolean, default=True)
    routes: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    l3_vni: Mapped[int] = mapped_column(Integer, unique=True)
    irb: Mapped[str] = mapped_column(String(16), default="symmetric")


class FloatingIP(Tagged, Revisioned, Base):
    __tablename__ = "floatingips"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), index=True)
    description: Mapped[str] = mapped_column(String(255), default="")
    floating_network_id: Mapped[str] = mapped_column(ForeignKey("networks.id"), index=True)
    floating_ip_address: Mapped[str] = mapped_column(String(64))
    floating_port_id: Mapped[str] = mapped_column(String(36))
    port_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    fixed_ip_address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    router_id: Mapped[str | None] = mapped_column(String(36), nullable=True)


class Chassis(Base):
    """A host whose agent registered: its underlay VTEP address and what its datapath can carry.
    Written only by that host's agent (register); heartbeats are kept in the controller's memory."""

    __tablename__ = "chassis"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    vtep_ip: Mapped[str] = mapped_column(String(64))
    encaps: Mapped[list[str]] = mapped_column(JSON, default=list)
    datapath: Mapped[str] = mapped_column(String(32), default="userspace")
    capabilities: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
