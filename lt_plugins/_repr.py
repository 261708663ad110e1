"""Values echoed back in error messages, cut short without ever building the whole text."""

from __future__ import annotations

from typing import Any

MAX_SHOWN = 200  # characters of a value echoed back in an error


class _Cut(Exception):
    pass


def bounded_repr(value: Any, limit: int = MAX_SHOWN) -> str:
    """``repr(value)`` cut at about ``limit`` characters, without ever building the whole of it.

    Safe on a YAML anchor bomb (nested lists sharing their items, exponential when expanded).

    Example:
        >>> bounded_repr([1, 2, 3])
        '[1, 2, 3]'
        >>> bomb = ["lol"] * 9
        >>> for _ in range(30):
        ...     bomb = [bomb] * 9
        >>> len(bounded_repr(bomb)) <= 203
        True
    """
    out: list[str] = []
    room = [limit]

    def emit(text: str) -> None:
        out.append(text[: room[0]])
        room[0] -= len(text)
        if room[0] < 0:
            raise _Cut

    def walk(item: Any) -> None:
        if isinstance(item, dict):
            emit("{")
            for i, (key, val) in enumerate(item.items()):
                emit(", " if i else "")
                walk(key)
                emit(": ")
                walk(val)
            emit("}")
        elif isinstance(item, (list, tuple)):
            emit("[" if isinstance(item, list) else "(")
            for i, val in enumerate(item):
                emit(", " if i else "")
                walk(val)
            emit("]" if isinstance(item, list) else ")")
        else:
            emit(repr(item[: limit + 1] if isinstance(item, (str, bytes)) else item))

    try:
        walk(value)
    except _Cut:
        return "".join(out) + "..."
    return "".join(out)
