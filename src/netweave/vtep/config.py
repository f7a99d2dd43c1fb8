"""The standalone VTEP's YAML file: schema (pydantic, unknown keys rejected) -> model value types.

Errors name the place in the file: `networks[0].ports[1].mac: not a MAC address: 'zz'`.
"""

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from netweave.model import Network, Port, Remote, VtepConfig
from netweave.model.wire import ips_of
from netweave.packet import GeneveOption
from netweave.yamlfile import read_mapping
from netweave.yamlfile import where as place


class ConfigError(ValueError):
    """A config file that cannot be used; the message is one line, fit for stderr."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class PortIn(_Strict):
    name: str
    netns: str | None = None
    mac: str
    ip: str | list[str] | None = None


class RemoteIn(_Strict):
    mac: str
    vtep: str
    ip: str | list[str] | None = None


class GeneveOptionIn(_Strict):
    option_class: int = Field(ge=0, le=0xFFFF, alias="class")
    type: int = Field(ge=0, le=0xFF)
    data: str = ""  # hex


class NetworkIn(_Strict):
    vni: int = Field(ge=0)
    encap: Literal["vxlan", "geneve", "nvgre", "gre"] = "vxlan"
    mode: Literal["flood-learn", "static"] = "flood-learn"
    flood: list[str] = []
    multicast_group: str | None = None
    arp_suppression: bool = True
    unknown_arp: Literal["flood", "drop"] = "flood"
    unknown_unicast: Literal["flood", "drop"] = "flood"
    geneve_options: list[GeneveOptionIn] = []
    ports: list[PortIn] = []
    remote: list[RemoteIn] = []


class VtepIn(_Strict):
    vtep_ip: str
    underlay_mtu: int = Field(default=1500, ge=576, le=65535)
    aging_s: float = Field(default=300.0, gt=0)
    networks: list[NetworkIn] = []


def build(data: Any) -> VtepConfig:
    """Validate a parsed document and turn it into the model; ConfigError on the first problem."""
    try:
        doc = VtepIn.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"{place(tuple(err['loc']))}: {err['msg']}") from None
    networks, ports, remotes = [], [], []
    seen_ports: set[str] = set()
    try:
        Remote(vni=0, mac="02:00:00:00:00:00", vtep=doc.vtep_ip)  # validates the address
    except ValueError as exc:
        raise ConfigError(f"vtep_ip: {exc}") from None
    for i, n in enumerate(doc.networks):
        where = f"networks[{i}]"
        try:
            opts = tuple(GeneveOption(option_class=o.option_class, type=o.type, data=bytes.fromhex(o.data))
                         for o in n.geneve_options)
            networks.append(Network(vni=n.vni, encap=n.encap, mode=n.mode, flood=tuple(n.flood),
                                    multicast_group=n.multicast_group, arp_suppression=n.arp_suppression,
                                    unknown_arp=n.unknown_arp, unknown_unicast=n.unknown_unicast,
                                    geneve_options=opts))
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        for j, p in enumerate(n.ports):
            if p.name in seen_ports:
                raise ConfigError(f"{where}.ports[{j}]: port name {p.name!r} used twice")
            seen_ports.add(p.name)
            try:
                ports.append(Port(name=p.name, vni=n.vni, mac=p.mac, ips=ips_of(p.ip), netns=p.netns))
            except ValueError as exc:
                raise ConfigError(f"{where}.ports[{j}]: {exc}") from None
        for j, r in enumerate(n.remote):
            try:
                remotes.append(Remote(vni=n.vni, mac=r.mac, vtep=r.vtep, ips=ips_of(r.ip)))
            except ValueError as exc:
                raise ConfigError(f"{where}.remote[{j}]: {exc}") from None
    vnis = [n.vni for n in networks]
    if len(set(vnis)) != len(vnis):
        raise ConfigError("networks: a vni appears twice")
    return VtepConfig(vtep_ip=doc.vtep_ip, underlay_mtu=doc.underlay_mtu, networks=tuple(networks),
                      ports=tuple(ports), remotes=tuple(remotes), aging_s=doc.aging_s)


def load(path: str | Path) -> VtepConfig:
    return build(read_mapping(path, ConfigError))
