"""NetWeave: network virtualization for Linux hosts (software VTEPs, controller, BGP EVPN)."""

__version__ = "0.1.0"
