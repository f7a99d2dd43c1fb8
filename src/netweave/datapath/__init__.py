"""Drivers that make the dataplane real. `userspace` runs the pure pipeline on TAPs and sockets."""
