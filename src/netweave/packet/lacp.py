"""LACPDU (IEEE 802.1AX): slow-protocols subtype 1, actor/partner/collector/terminator TLVs.

The PDU is fixed-size (110 bytes) so it is declared whole, as Linux's `struct lacpdu` and scapy do.
Receive checks follow teamd: subtype 1 and TLV lengths 20/20/16/0; version, TLV types and reserved
bytes are not enforced (a newer version may add TLVs we skip).
"""

from typing import Annotated

from netweave.packet.addr import ZERO_MAC
from netweave.packet.errors import DecodeError
from netweave.packet.header import U8, U16, U24, Header, Mac, raw
from netweave.packet.l2 import ETH_P_SLOW
from netweave.packet.registry import bind

LACP_DST_MAC = "01:80:c2:00:00:02"
SLOW_SUBTYPE_LACP = 1

# actor/partner state bits (bit 0 = least significant)
STATE_ACTIVITY = 0x01
STATE_TIMEOUT = 0x02
STATE_AGGREGATION = 0x04
STATE_SYNCHRONIZATION = 0x08
STATE_COLLECTING = 0x10
STATE_DISTRIBUTING = 0x20
STATE_DEFAULTED = 0x40
STATE_EXPIRED = 0x80


class Lacpdu(Header):
    subtype: U8 = SLOW_SUBTYPE_LACP
    version: U8 = 1
    actor_type: U8 = 1
    actor_length: U8 = 20
    actor_system_priority: U16 = 32768
    actor_system: Mac = ZERO_MAC
    actor_key: U16 = 0
    actor_port_priority: U16 = 32768
    actor_port: U16 = 0
    actor_state: U8 = 0
    actor_reserved: U24 = 0
    partner_type: U8 = 2
    partner_length: U8 = 20
    partner_system_priority: U16 = 32768
    partner_system: Mac = ZERO_MAC
    partner_key: U16 = 0
    partner_port_priority: U16 = 32768
    partner_port: U16 = 0
    partner_state: U8 = 0
    partner_reserved: U24 = 0
    collector_type: U8 = 3
    collector_length: U8 = 16
    collector_max_delay: U16 = 0
    collector_reserved: Annotated[bytes, raw(12)] = bytes(12)
    terminator_type: U8 = 0
    terminator_length: U8 = 0
    reserved: Annotated[bytes, raw(50)] = bytes(50)

    def _parse_tail(self, buf: bytes | memoryview, start: int, off: int, end: int) -> tuple[int, int]:
        if self.subtype != SLOW_SUBTYPE_LACP:
            raise DecodeError(f"LACP: slow-protocols subtype {self.subtype} is not LACP")
        lens = (self.actor_length, self.partner_length, self.collector_length, self.terminator_length)
        if lens != (20, 20, 16, 0):
            raise DecodeError(f"LACP: TLV lengths {lens}, expected (20, 20, 16, 0)")
        return off, off  # bytes beyond 110 are trailer/padding


bind("ethertype", ETH_P_SLOW, Lacpdu)
