"""The one exception every decoder raises on bad bytes."""


class DecodeError(ValueError):
    """Bytes that do not form a valid header of the expected kind.

    Decoders raise this and nothing else for any input: the datapath counts and drops on it, and a
    malformed packet can never take a process down with an IndexError or struct.error.
    """
