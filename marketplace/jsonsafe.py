"""Parse JSON from people and models within bounds: a length cap and a nesting limit of its own.

Python's json module recurses once per nesting level, and web3 raises the interpreter's recursion
limit to 100,000, so deep enough input overflows the C stack and kills the process instead of
raising. Every parse of untrusted JSON therefore measures the nesting first, in one linear pass
that recurses nowhere, and parses only what is within bounds.
"""

import json
import re

# Deeper than any schema or result a person reads; far below what the C stack can take.
MAX_DEPTH = 64
_STRUCTURE = re.compile(r'[\[\]{}"\\]')


class JSONTooLarge(ValueError):
    """The text is longer or nests deeper than allowed; the message says which, for people."""


def nesting_depth(text: str, *, stop_at: int | None = None) -> int:
    """Return how deep brackets nest in `text`, outside JSON strings (stop once past `stop_at`).

    Only brackets, quotes and backslashes are visited (found by a regex, in C), so a long
    answer costs little.
    """
    depth = deepest = 0
    in_string = False
    escaped_at = -1  # the position a backslash inside a string makes literal
    for match in _STRUCTURE.finditer(text):
        position, char = match.start(), match.group()
        if position == escaped_at:
            continue
        if in_string:
            if char == "\\":
                escaped_at = position + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_at is not None and deepest > stop_at:
                    return deepest
        elif char in "]}" and depth:
            depth -= 1
    return deepest


def check_bounds(text: str, *, max_chars: int, max_depth: int = MAX_DEPTH) -> None:
    """Raise JSONTooLarge unless `text` is at most `max_chars` long and `max_depth` deep."""
    if len(text) > max_chars:
        raise JSONTooLarge(f"The JSON is longer than {max_chars:,} characters.")
    if nesting_depth(text, stop_at=max_depth) > max_depth:
        raise JSONTooLarge(f"The JSON nests deeper than {max_depth} levels.")


def loads(text: str, *, max_chars: int, max_depth: int = MAX_DEPTH) -> object:
    """Parse `text` as JSON after checking its bounds; raise JSONTooLarge or ValueError."""
    check_bounds(text, max_chars=max_chars, max_depth=max_depth)
    return json.loads(text)
