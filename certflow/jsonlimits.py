"""Parse JSON that someone else wrote, with its nesting bounded.

orjson itself refuses documents nested deeper than 1024 levels, but what reads the
result afterwards does not get that far: ``rfc8785`` (canonicalising a presented
credential), ``repr``, pydantic's serialiser (255) and ``orjson.dumps`` (254) all
give up, some with a ``RecursionError``, long before. No certflow document (a
Sunbird event, a reference row, a credential, a status list) is nested more than a
dozen levels, so every place that parses untrusted JSON goes through
:func:`loads_bounded`, which refuses anything nested deeper than
:data:`MAX_JSON_DEPTH`: one limit, checked once, where the bytes come in.

:class:`JSONTooDeep` is an ``orjson.JSONDecodeError``, so every caller that already
reports malformed JSON (``MALFORMED_JSON`` on a dead-letter topic, a 400 from a web
view, a rejected row) reports a too-deep document the same way, with its reason.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["MAX_JSON_DEPTH", "JSONTooDeep", "check_depth", "loads_bounded"]

#: Deepest nesting of arrays and objects accepted (the top-level object is depth 1).
MAX_JSON_DEPTH = 64


class JSONTooDeep(orjson.JSONDecodeError):
    """A JSON document nested deeper than the limit: malformed input, with its reason."""

    def __init__(self, max_depth: int, document: str | bytes = "") -> None:
        message = f"JSON nested deeper than {max_depth} levels (arrays and objects)"
        text = document if isinstance(document, str) else ""
        super().__init__(message, text, 0)
        self.max_depth = max_depth

    def __str__(self) -> str:
        return self.msg  # no "line 1 column 1": the position is not where the problem is


def loads_bounded(raw: bytes | bytearray | memoryview | str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``orjson.loads(raw)``, refusing nesting deeper than ``max_depth``.

    Raises ``orjson.JSONDecodeError`` for invalid JSON and :class:`JSONTooDeep` (a
    subclass) for JSON nested too deep, including documents orjson itself finds too
    deep (over 1024 levels), so the reason is the same whatever the depth.
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth limit exceeded" in str(exc):
            raise JSONTooDeep(max_depth) from None
        raise
    # Each '[' or '{' opens at most one level, so a document with no more of them
    # than the limit cannot exceed it: most documents skip the walk (a C-speed count).
    data = raw.encode() if isinstance(raw, str) else raw if isinstance(raw, bytes) else bytes(raw)
    if data.count(b"[") + data.count(b"{") > max_depth:
        check_depth(value, max_depth)
    return value


def check_depth(value: Any, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise :class:`JSONTooDeep` if ``value`` nests lists and dicts deeper than ``max_depth``.

    Iterative, so it cannot itself run out of stack whatever it is given.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        item, depth = pop()
        kind = type(item)
        if kind is dict:
            children = item.values()
        elif kind is list:
            children = item
        else:
            continue
        if depth > max_depth:
            raise JSONTooDeep(max_depth)
        for child in children:
            child_kind = type(child)
            if child_kind is dict or child_kind is list:
                push((child, depth + 1))
