"""Which header follows which: registries keyed by (namespace, code), as scapy's ``bind_layers``.

A header says what comes next with ``next_layer()`` -> ("ethertype", 0x0800) and the registry maps that
to a class. Codes nobody registered leave their bytes as the packet's raw payload (the generic fallback);
registering a code twice is a programming error and fails at import.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from netweave.packet.errors import DecodeError
from netweave.packet.header import Header, build_stack

_REGISTRY: dict[tuple[str, int], type[Header]] = {}

H = TypeVar("H", bound=Header)


def bind(namespace: str, code: int, cls: type[Header]) -> None:
    """Declare that `code` in `namespace` ("ethertype", "ip_proto", "udp_port", ...) is decoded as `cls`."""
    key = (namespace, code)
    if key in _REGISTRY:
        raise ValueError(f"{namespace} {code:#x} is already bound to {_REGISTRY[key].__name__}")
    _REGISTRY[key] = cls


def lookup(namespace: str, code: int) -> type[Header] | None:
    return _REGISTRY.get((namespace, code))


def next_layer(hdr: Header) -> tuple[str, int] | None:
    """(namespace, code) naming the header after `hdr`, or None where the header ends the chain."""
    fn = getattr(hdr, "next_layer", None)
    return fn() if fn is not None else None


@dataclass
class Packet:
    """A decoded frame: its headers, outermost first, and the bytes no registered header claimed."""

    layers: list[Header] = field(default_factory=list)
    payload: bytes = b""

    def __iter__(self) -> Iterator[Header]:
        return iter(self.layers)

    def get(self, cls: type[H], nth: int = 0) -> H | None:
        """The `nth` header of type `cls` (0 = outermost), or None."""
        seen = 0
        for hdr in self.layers:
            if isinstance(hdr, cls):
                if seen == nth:
                    return hdr
                seen += 1
        return None

    def __getitem__(self, cls: type[H]) -> H:
        hdr = self.get(cls)
        if hdr is None:
            raise KeyError(cls.__name__)
        return hdr

    def build(self) -> bytes:
        return build_stack(self.layers, self.payload)


MAX_LAYERS = 64


def decode(buf: bytes, first: type[Header] | None = None) -> Packet:
    """Decode `buf` (an Ethernet frame unless `first` says otherwise) as deep as the registries know.

    Raises DecodeError, and only that, when a header that should be there is malformed or truncated.
    """
    if first is None:
        first = lookup("link", 1)  # LINKTYPE_ETHERNET, bound by l2
    pkt = Packet()
    cls: type[Header] | None = first
    off, end = 0, len(buf)
    while cls is not None:
        if len(pkt.layers) >= MAX_LAYERS:
            raise DecodeError(f"more than {MAX_LAYERS} nested headers")
        hdr, hdr_end, payload_end = cls.parse(buf[:end], off)
        pkt.layers.append(hdr)
        off, end = hdr_end, payload_end
        key = next_layer(hdr)
        cls = lookup(*key) if key is not None else None
    pkt.payload = bytes(buf[off:end])
    return pkt
