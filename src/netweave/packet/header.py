"""Headers declared once as data; parse and build are derived from the declaration.

A header is a class whose annotated attributes are its wire fields, in wire order::

    class Vxlan(Header):
        flags: U8 = 0x08
        reserved1: U24 = 0
        vni: U24 = 0
        reserved2: U8 = 0

At class creation the declaration is compiled (as scapy's ``fields_desc`` and dpkt's ``__hdr__`` are) into
one ``struct`` format: runs of bit fields are packed into byte-aligned words, addresses and fixed byte
strings become ``Ns`` items. Specialised unpack/pack functions are generated from it with ``exec`` (the
technique ``dataclasses`` and ``namedtuple`` use), so a header costs one ``struct`` call plus shifts and
masks, not a Python loop over fields: that is what lets the codecs run well over 20x faster than scapy.

Fields whose value is ``None`` on build (lengths, checksums: annotated ``Auto*``) are computed by the
header's ``_autos`` / ``_fill_checksum`` hooks. Variable parts (options, TLVs) are ``Extra`` attributes,
parsed by ``_parse_tail`` and built by ``_tail``. Decoding bad bytes raises ``DecodeError`` only.
"""

import inspect
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Self, dataclass_transform, get_args, get_origin

from netweave.packet.addr import (
    ipv4_from_bytes,
    ipv4_to_bytes,
    ipv6_from_bytes,
    ipv6_to_bytes,
    mac_from_bytes,
    mac_to_bytes,
)
from netweave.packet.errors import DecodeError


@dataclass(frozen=True)
class Bits:
    """An unsigned integer field `width` bits wide (big-endian on the wire unless the header says)."""

    width: int


@dataclass(frozen=True)
class Octets:
    """A fixed-size field of `size` bytes, carried as text (MAC/IP) or raw bytes."""

    size: int
    kind: str  # "mac" | "ipv4" | "ipv6" | "raw"


@dataclass(frozen=True)
class Extra:
    """A non-fixed part of the header (options, TLVs, conditional fields) handled by the header's hooks."""


U1 = Annotated[int, Bits(1)]
U2 = Annotated[int, Bits(2)]
U3 = Annotated[int, Bits(3)]
U4 = Annotated[int, Bits(4)]
U5 = Annotated[int, Bits(5)]
U6 = Annotated[int, Bits(6)]
U8 = Annotated[int, Bits(8)]
U12 = Annotated[int, Bits(12)]
U13 = Annotated[int, Bits(13)]
U16 = Annotated[int, Bits(16)]
U20 = Annotated[int, Bits(20)]
U24 = Annotated[int, Bits(24)]
U32 = Annotated[int, Bits(32)]
U64 = Annotated[int, Bits(64)]
Auto4 = Annotated[int | None, Bits(4)]
Auto6 = Annotated[int | None, Bits(6)]
Auto8 = Annotated[int | None, Bits(8)]
Auto16 = Annotated[int | None, Bits(16)]
Mac = Annotated[str, Octets(6, "mac")]
IPv4Addr = Annotated[str, Octets(4, "ipv4")]
IPv6Addr = Annotated[str, Octets(16, "ipv6")]


def raw(size: int) -> Octets:
    return Octets(size, "raw")


_DECODERS: dict[str, Callable[[bytes], Any]] = {
    "mac": mac_from_bytes,
    "ipv4": ipv4_from_bytes,
    "ipv6": ipv6_from_bytes,
}
_ENCODERS: dict[str, Callable[[Any], bytes]] = {
    "mac": mac_to_bytes,
    "ipv4": ipv4_to_bytes,
    "ipv6": ipv6_to_bytes,
}
_WORD_CODES = {8: "B", 16: "H", 32: "I", 64: "Q"}


@dataclass(frozen=True)
class FieldSpec:
    """One compiled field: where it sits in the struct item list and how to get it out."""

    name: str
    kind: str  # "bits" | "mac" | "ipv4" | "ipv6" | "raw"
    width: int  # bits for "bits", bytes otherwise
    default: Any
    item: int  # index into the struct's unpacked tuple
    shift: int  # for "bits": right shift inside the word
    whole: bool  # the field is the whole struct item


def _field_meta(annotation: Any) -> Bits | Octets | Extra | None:
    if get_origin(annotation) is not Annotated:
        return None
    for meta in get_args(annotation)[1:]:
        if isinstance(meta, Bits | Octets | Extra):
            return meta
    return None


def _word_boundaries(names_meta: list[tuple[str, "Bits | Octets"]], *, big_endian: bool) -> set[int]:
    """Indices of the bit fields that end a struct word.

    Big-endian runs of bit fields are packed into the widest native word (64/32/16/8 bits) that ends on
    a field boundary, so VXLAN's four fields are one 64-bit read and IPv4's first 13 fields two reads.
    Fewer, native items make unpacking faster than one odd-width `int.from_bytes` per byte-aligned run.
    In big-endian order splitting a word into fields or joining fields into a word gives the same bytes;
    little-endian formats (pcap files) keep one word per byte-aligned run.
    """
    ends: set[int] = set()
    i, n = 0, len(names_meta)
    while i < n:
        if not isinstance(names_meta[i][1], Bits):
            i += 1
            continue
        cum, first_aligned, best, j = 0, None, None, i
        while j < n:
            meta = names_meta[j][1]
            if not isinstance(meta, Bits):
                break
            cum += meta.width
            if cum > 64 and first_aligned is not None:
                break
            if cum % 8 == 0:
                if first_aligned is None:
                    first_aligned = j
                if cum in _WORD_CODES:
                    best = j
            if not big_endian and first_aligned is not None:
                break
            j += 1
        end = best if big_endian and best is not None else first_aligned
        if end is None:
            return ends  # the caller reports the unaligned run
        ends.add(end)
        i = end + 1
    return ends


def _compile(cls: type, names_meta: list[tuple[str, Bits | Octets]], byteorder: str) -> None:
    """Turn the field list into a struct format and generated unpack/pack functions on `cls`."""
    specs: list[FieldSpec] = []
    fmt: list[str] = [byteorder]
    converters: list[str] = []  # per struct item: "" or a decoder name for odd-width words
    pending: list[tuple[str, int, Any]] = []  # bit fields of the word being filled
    pending_bits = 0

    def flush_word() -> None:
        nonlocal pending, pending_bits
        item = len(fmt) - 1
        code = _WORD_CODES.get(pending_bits)
        if code is None:
            fmt.append(f"{pending_bits // 8}s")
            converters.append("int")
        else:
            fmt.append(code)
            converters.append("")
        shift = pending_bits
        for name, width, default in pending:
            shift -= width
            specs.append(FieldSpec(name, "bits", width, default, item, shift, len(pending) == 1))
        pending, pending_bits = [], 0

    flush_after = _word_boundaries(names_meta, big_endian=byteorder != "<")
    for index, (name, meta) in enumerate(names_meta):
        default = cls.__dict__.get(name, getattr(cls, name, 0))
        if isinstance(meta, Bits):
            pending.append((name, meta.width, default))
            pending_bits += meta.width
            if index in flush_after:
                flush_word()
        else:
            if pending:
                raise TypeError(f"{cls.__name__}.{name}: byte field starts inside a bit word")
            item = len(fmt) - 1
            fmt.append(f"{meta.size}s")
            converters.append("")
            specs.append(FieldSpec(name, meta.kind, meta.size, default, item, 0, True))
    if pending:
        raise TypeError(f"{cls.__name__}: bit fields do not end on a byte boundary")

    st = struct.Struct("".join(fmt))
    nitems = len(fmt) - 1
    ns: dict[str, Any] = {"_st": st, "DecodeError": DecodeError, "struct": struct, "cls": cls}
    ns.update({f"_dec_{k}": v for k, v in _DECODERS.items()})
    ns.update({f"_enc_{k}": v for k, v in _ENCODERS.items()})
    big = "little" if byteorder == "<" else "big"

    # --- unpack: bytes -> tuple of field values
    items = ", ".join(f"w{i}" for i in range(nitems)) + ("," if nitems == 1 else "")
    lines = ["def _unpack(buf, off):", "    try:", f"        {items} = _st.unpack_from(buf, off)",
             "    except struct.error:",
             f"        raise DecodeError('{cls.__name__}: truncated, need {st.size} bytes at offset '"
             " + str(off) + ', have ' + str(max(len(buf) - off, 0))) from None"]
    for i, conv in enumerate(converters):
        if conv == "int":
            lines.append(f"    w{i} = int.from_bytes(w{i}, '{big}')")
    exprs = []
    for s in specs:
        if s.kind == "bits":
            expr = f"w{s.item}" if s.whole else f"(w{s.item} >> {s.shift}) & {(1 << s.width) - 1}"
        elif s.kind == "raw":
            expr = f"w{s.item}"
        else:
            expr = f"_dec_{s.kind}(w{s.item})"
        exprs.append(expr)
    lines.append("    return (" + ", ".join(exprs) + ("," if len(exprs) == 1 else "") + ")")

    # --- pack: field values (no None) -> bytes of the fixed part
    args = ", ".join(s.name for s in specs)
    plines = [f"def _pack({args}):"]
    words: dict[int, list[FieldSpec]] = {}
    for s in specs:
        words.setdefault(s.item, []).append(s)
        if s.kind == "bits" and not s.whole:
            plines.append(f"    if not 0 <= {s.name} < {1 << s.width}:")
            msg = f"{cls.__name__}.{s.name}={{}} does not fit {s.width} bits"
            plines.append(f"        raise ValueError('{msg}'.format({s.name}))")
    witems = []
    for i in range(nitems):
        fields_i = words[i]
        first = fields_i[0]
        if first.kind == "bits":
            expr = " | ".join(f"({f.name} << {f.shift})" if f.shift else f.name for f in fields_i)
            if converters[i] == "int":
                nbytes = sum(f.width for f in fields_i) // 8
                plines.append(f"    if not 0 <= ({expr}) < {1 << (8 * nbytes)}:")
                what = f"{cls.__name__}.{first.name}" if len(fields_i) == 1 else cls.__name__
                msg = f"{what}: value does not fit {nbytes * 8} bits"
                plines.append(f"        raise ValueError('{msg}')")
                expr = f"({expr}).to_bytes({nbytes}, '{big}')"
        elif first.kind == "raw":
            plines.append(f"    if len({first.name}) != {first.width}:")
            msg = f"{cls.__name__}.{first.name}: need {first.width} bytes"
            plines.append(f"        raise ValueError('{msg}')")
            expr = first.name
        else:
            expr = f"_enc_{first.kind}({first.name})"
        witems.append(expr)
    plines.append("    try:")
    plines.append("        return _st.pack(" + ", ".join(witems) + ")")
    plines.append("    except struct.error as exc:")
    plines.append(f"        raise ValueError('{cls.__name__}: ' + str(exc)) from None")

    exec("\n".join(lines) + "\n\n" + "\n".join(plines), ns)
    cls._unpack_fixed = staticmethod(ns["_unpack"])  # type: ignore[attr-defined]
    cls._pack_fixed = staticmethod(ns["_pack"])  # type: ignore[attr-defined]
    cls._struct = st  # type: ignore[attr-defined]
    cls._specs = tuple(specs)  # type: ignore[attr-defined]


def _make_init(cls: "type[Header]") -> Callable[..., None]:
    """A keyword-only __init__ with the declared defaults, generated as dataclasses does: one
    assignment per field, no loop. List defaults (options) are copied so instances never share them."""
    ns: dict[str, Any] = {}
    params, body = [], ["    d = self.__dict__"]
    for name in cls._all:
        ns[f"_d_{name}"] = cls._defaults[name]
        params.append(f"{name}=_d_{name}")
        if isinstance(cls._defaults[name], list):
            body.append(f"    d['{name}'] = list({name})")
        else:
            body.append(f"    d['{name}'] = {name}")
    src = f"def __init__(self, *, {', '.join(params)}):\n" + "\n".join(body)
    exec(src, ns)
    fn: Callable[..., None] = ns["__init__"]
    fn.__qualname__ = f"{cls.__qualname__}.__init__"
    return fn


@dataclass_transform(kw_only_default=True)
class Header:
    """Base of every wire header. Subclasses declare fields as annotated class attributes."""

    #: compiled at subclass creation
    _fields: ClassVar[tuple[str, ...]] = ()
    _extras: ClassVar[tuple[str, ...]] = ()
    _all: ClassVar[tuple[str, ...]] = ()
    _defaults: ClassVar[dict[str, Any]] = {}
    _autos_present: ClassVar[bool] = False
    _struct: ClassVar[struct.Struct]
    _specs: ClassVar[tuple[FieldSpec, ...]]
    #: struct byte order of the wire format: network order unless a format says otherwise (pcap files)
    _byteorder: ClassVar[str] = ">"
    #: size in bytes of the fixed part
    size: ClassVar[int] = 0
    #: IPv4/IPv6 set this: their addresses form the pseudo-header of the L4 checksums under them
    is_network_layer: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = inspect.get_annotations(cls)
        wire: list[tuple[str, Bits | Octets]] = []
        extras: list[str] = list(getattr(cls, "_extras", ()))
        inherited = [(n, m) for n, m in getattr(cls, "_wire_decl", ())]
        wire.extend(inherited)
        for name, ann in own.items():
            meta = _field_meta(ann)
            if meta is None:
                continue
            if isinstance(meta, Extra):
                extras.append(name)
            else:
                wire.append((name, meta))
        cls._wire_decl = tuple(wire)  # type: ignore[attr-defined]
        if not wire:
            return
        _compile(cls, wire, cls._byteorder)
        cls._fields = tuple(n for n, _ in wire)
        cls._extras = tuple(extras)
        cls._all = cls._fields + cls._extras
        cls._defaults = {n: getattr(cls, n, 0) for n in cls._all}
        cls._autos_present = any(v is None for n, v in cls._defaults.items() if n in cls._fields)
        cls.size = cls._struct.size
        cls.__init__ = _make_init(cls)  # type: ignore[method-assign]

    def __init__(self, **values: Any) -> None:
        """Replaced per subclass by a generated keyword-only __init__ (see `_make_init`)."""
        raise TypeError(f"{type(self).__name__} declares no fields")

    # ---- generated per subclass
    @staticmethod
    def _unpack_fixed(buf: bytes | memoryview, off: int) -> tuple[Any, ...]:
        raise NotImplementedError

    @staticmethod
    def _pack_fixed(*values: Any) -> bytes:
        raise NotImplementedError

    # ---- hooks for variable parts and computed fields
    def _parse_tail(self, buf: bytes | memoryview, start: int, off: int, end: int) -> tuple[int, int]:
        """Parse what follows the fixed part. `start` is where the header begins, `off` where its fixed
        part ends, `end` where the buffer ends. Returns (end of this header, end of its payload)."""
        return off, end

    def _tail(self) -> bytes:
        """Bytes that follow the fixed part on build (options, TLVs)."""
        return b""

    def _autos(self, tail: bytes, payload: bytes, ip: "Header | None") -> Mapping[str, int]:
        """Values for fields left None (lengths, flags). Checksums are done by `_fill_checksum`."""
        return {}

    def _fill_checksum(self, hdr: bytearray, payload: bytes, ip: "Header | None") -> None:
        """Patch a checksum into `hdr` (header bytes with the checksum field zero) when it was None."""

    # ---- public API
    @classmethod
    def parse(cls, buf: bytes | memoryview, offset: int = 0) -> tuple[Self, int, int]:
        """Decode the header at `offset`. Returns (header, header end, payload end)."""
        if offset < 0:
            raise DecodeError(f"{cls.__name__}: negative offset")
        vals = cls._unpack_fixed(buf, offset)
        obj = cls.__new__(cls)
        d = obj.__dict__
        d.update(zip(cls._fields, vals, strict=True))
        for name in cls._extras:
            v = cls._defaults[name]
            d[name] = list(v) if isinstance(v, list) else v
        hdr_end, payload_end = obj._parse_tail(buf, offset, offset + cls.size, len(buf))
        return obj, hdr_end, payload_end

    @classmethod
    def unpack_values(cls, buf: bytes | memoryview, offset: int = 0) -> tuple[Any, ...]:
        """The fixed part's field values in declaration order, without building an object: the
        datapath's per-packet path (DecodeError when truncated, like `parse`)."""
        return cls._unpack_fixed(buf, offset)

    @classmethod
    def from_bytes(cls, buf: bytes) -> Self:
        """Decode a header that must span exactly `buf`'s header part (payload ignored)."""
        return cls.parse(buf, 0)[0]

    def header_bytes(self, payload: bytes = b"", *, ip: "Header | None" = None) -> bytes:
        """Only this header's bytes, with auto fields computed for the given payload."""
        tail = self._tail()
        d = self.__dict__
        vals = [d[n] for n in self._fields]
        ck_fixup = False
        if self._autos_present and None in vals:
            autos = self._autos(tail, payload, ip)
            for i, name in enumerate(self._fields):
                if vals[i] is None:
                    if name in autos:
                        vals[i] = autos[name]
                    else:  # a checksum: zero now, patched after the bytes exist
                        vals[i] = 0
                        ck_fixup = True
        hdr = self._pack_fixed(*vals)
        if tail:
            hdr += tail
        if ck_fixup:
            buf = bytearray(hdr)
            self._fill_checksum(buf, payload, ip)
            hdr = bytes(buf)
        return hdr

    def build(self, payload: bytes = b"", *, ip: "Header | None" = None) -> bytes:
        """This header followed by `payload`. `ip` is the enclosing IP header, for pseudo-header sums."""
        return self.header_bytes(payload, ip=ip) + payload

    def final_destination(self) -> str | None:
        """Where the packet finally goes when this header routes it on (IPv6 routing headers)."""
        return None

    def __bytes__(self) -> bytes:
        return self.build()

    def replace(self, **changes: Any) -> Self:
        values = {n: self.__dict__[n] for n in self._all}
        values.update(changes)
        return type(self)(**values)

    def to_dict(self) -> dict[str, Any]:
        return {n: self.__dict__[n] for n in self._all}

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(self.__dict__[n] == other.__dict__[n] for n in self._all)

    __hash__ = None  # type: ignore[assignment]  # mutable value objects

    def __repr__(self) -> str:
        body = ", ".join(f"{n}={self.__dict__[n]!r}" for n in self._all)
        return f"{type(self).__name__}({body})"


def build_stack(layers: "list[Header]", payload: bytes = b"") -> bytes:
    """Build `layers` (outermost first) around `payload`, innermost first, so that lengths and checksums
    see their real payload; each layer gets the nearest enclosing IP header for pseudo-header sums."""
    data = payload
    for i in range(len(layers) - 1, -1, -1):
        ip = None
        final_dst = None
        for j in range(i - 1, -1, -1):
            if final_dst is None:
                final_dst = layers[j].final_destination()
            if layers[j].is_network_layer:
                ip = layers[j]
                break
        if ip is not None and final_dst is not None:
            ip = ip.replace(dst=final_dst)  # RFC 8200 8.1: upper-layer sums use the final destination
        data = layers[i].build(data, ip=ip)
    return data
