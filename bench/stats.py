"""Percentiles and the printed table."""

from __future__ import annotations

import math


def percentile(values, p: float) -> float | None:
    """The p-th percentile (nearest rank) of values, or None if there are none."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def fmt(value, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{unit}"
    return f"{value:,}{unit}"


def verdict(ok: bool | None) -> str:
    if ok is None:
        return ""
    return "PASS" if ok else "MISS"


def table(rows: list[tuple], headers: tuple) -> str:
    """Render rows as a plain-text table; a row of one string is a section heading."""
    widths = [len(h) for h in headers]
    for row in rows:
        if len(row) == len(headers):
            widths = [max(w, len(str(c))) for w, c in zip(widths, row, strict=True)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True)), line]
    for row in rows:
        if len(row) == 1:
            out.append(str(row[0]))
        else:
            out.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    return "\n".join(out)
