"""Forwarding logic of a VTEP, pure: tables (L2 FIB, flood sets, ARP/ND bindings), counters, the
pipeline and its flow cache. No sockets, no clock (time is passed in): unit-tested without root."""

from netweave.dataplane.counters import Counters
from netweave.dataplane.fib import FibEntry, L2Fib
from netweave.dataplane.pipeline import GROUP, PORT, VTEP, Binding, Dataplane, Result, Target

__all__ = ["GROUP", "PORT", "VTEP", "Binding", "Counters", "Dataplane", "FibEntry", "L2Fib", "Result",
           "Target"]
