"""Client-supplied values in log lines, bounded: a message may carry a job id (or any field) of megabytes,
and the same delivery can come back again and again."""
from __future__ import annotations

import reprlib

#: characters of a client-supplied value kept in a log line
LIMIT = 100

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = _repr.maxlong = LIMIT
_repr.maxlevel = 2


def clip(value, limit: int = LIMIT) -> str:
    """``repr(value)`` in at most about ``limit`` characters; a cut string says how long it was. Never builds
    the whole repr of a long value first."""
    if isinstance(value, (str, bytes)):
        if len(value) <= limit:
            return repr(value)
        unit = "characters" if isinstance(value, str) else "bytes"
        return f"{value[:limit]!r}... ({len(value)} {unit})"
    text = _repr.repr(value)
    return text if len(text) <= limit + 20 else text[:limit] + "..."
