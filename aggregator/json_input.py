"""JSON from outside, read within bounds: a size cap and a nesting-depth cap.

Python's parser recurses once per nesting level, so a body of ten thousand ``[`` ends in a
``RecursionError`` (a 500, a traceback in the logs) unless the depth is checked first. Every
place that reads JSON a client or an upstream sent goes through here; a refusal is a
``ValueError`` (:class:`JSONRefused`), which callers already turn into their 400.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

#: deeper than any document we accept needs (client metadata and claims requests nest 3-4 levels)
MAX_DEPTH = 16
#: the default size cap (the request body limit applies on top)
MAX_BYTES = 64 * 1024

_OPEN = frozenset(b"[{")
_CLOSE = frozenset(b"]}")
_QUOTE, _BACKSLASH = ord('"'), ord("\\")


class JSONRefused(ValueError):
    """Not JSON we are willing to read (too large, too deeply nested, or malformed)."""


def check_depth(data: bytes, max_depth: int = MAX_DEPTH) -> None:
    """Refuse ``data`` whose arrays and objects nest deeper than ``max_depth``."""
    depth = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == _BACKSLASH:
                escaped = True
            elif byte == _QUOTE:
                in_string = False
        elif byte == _QUOTE:
            in_string = True
        elif byte in _OPEN:
            depth += 1
            if depth > max_depth:
                raise JSONRefused(f"JSON nested deeper than {max_depth} levels.")
        elif byte in _CLOSE:
            depth -= 1


def loads(data: str | bytes, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` within bounds; every failure is a :class:`JSONRefused`."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise JSONRefused(f"JSON larger than {max_bytes} bytes.")
    check_depth(raw, max_depth)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: belt and braces
        raise JSONRefused("Not valid JSON.") from exc


def check_compact_jws(value: str, *, max_depth: int = MAX_DEPTH) -> None:
    """Refuse a compact JWS whose header or payload JSON nests too deeply, before any JOSE
    library parses it."""
    for segment in value.split(".")[:2]:
        try:
            decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        except (binascii.Error, ValueError):
            continue  # not base64url: the JOSE library refuses it on its own
        check_depth(decoded, max_depth)


def request_object(what: str, invalid: Callable[[str], Exception]) -> dict[str, Any]:
    """The Flask request's body as a JSON object: 415 unless it is ``application/json``, and
    ``invalid(description)`` raised for a body that is not one (``what`` names it)."""
    from flask import request

    from aggregator.errors import UnsupportedMediaType

    if request.mimetype != "application/json":
        raise UnsupportedMediaType(f"Send the {what} as application/json.")
    try:
        document = loads(request.get_data())
    except ValueError as exc:
        raise invalid(f"The body is not acceptable JSON: {exc}") from None
    if not isinstance(document, dict):
        raise invalid(f"The body must be a JSON object ({what}).")
    return document
