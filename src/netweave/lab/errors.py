"""The lab's one error type: a one-line message, fit for `netweave: error: ...` on stderr."""


class LabError(RuntimeError):
    """Something the lab cannot do; the message says what and, where it helps, what to run next."""


class SpecError(LabError, ValueError):
    """A lab file that cannot be used; the message names the place: `tenants[0].vms[1].host: ...`."""
