"""YAML files a user writes (the VTEP's config, a lab): read as one mapping, errors as one line that
names the file or the place in it."""

from pathlib import Path
from typing import Any

import yaml


def where(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as the user wrote it: ('networks', 0, 'ports', 1) -> networks[0].ports[1]."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "file"


def read_mapping(path: str | Path, error: type[ValueError]) -> dict[str, Any]:
    """The file's top-level mapping; `error(message)` when it cannot be read, parsed or is not one."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise error(f"{path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping at the top level")
    return data
