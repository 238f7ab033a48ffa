"""Text of the figures: number formats, explanation names and edge summaries."""

from __future__ import annotations

from collections.abc import Sequence

from shapiq import InteractionValues

from fixlip_captum.plot._values import EDGE_KINDS


def describe(iv: InteractionValues) -> str:
    """Short name of the explanation, e.g. ``"FWBII p=0.5"``."""
    p = getattr(iv, "p", None)
    name = str(iv.index)
    return f"{name} p={p:g}" if p is not None else name


def edge_summary(pairs: Sequence[tuple[int, int, float]], kinds: Sequence[str]) -> str:
    """One line saying which edges are drawn and their extreme values."""
    if not pairs:
        return "no interactions drawn"
    pos = [v for _, _, v in pairs if v > 0]
    neg = [v for _, _, v in pairs if v < 0]
    kind = "all" if len(kinds) == len(EDGE_KINDS) else "/".join(kinds)
    parts = [f"edges: top {len(pairs)} {kind}"]
    if pos:
        parts.append(f"max +{fmt(max(pos))}")
    if neg:
        parts.append(f"min {fmt(min(neg))}")
    return ", ".join(parts)


def fmt(value: float | None) -> str:
    """Compact number format for labels and tables."""
    if value is None:
        return "n/a"
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.4g}"
    return f"{value:.2e}"
