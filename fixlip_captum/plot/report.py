"""A self-contained HTML report of one explanation (figures embedded as base64 PNG)."""

from __future__ import annotations

import base64
import html
import io
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from shapiq import InteractionValues

from fixlip_captum.atomic_write import atomic_file
from fixlip_captum.plot._labels import describe, fmt
from fixlip_captum.plot._values import first_order, get_context, pair_kind, top_pairs
from fixlip_captum.plot.conditional import plot_conditional_grid
from fixlip_captum.plot.joint import plot_joint

__all__ = ["figure_to_base64", "render_report", "write_report"]

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.caption { font-size: 1.1em; color: #444; margin-bottom: 1em; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 3px 9px; text-align: left; }
th { background: #f4f4f4; }
td.num { text-align: right; font-family: monospace; }
.pos { color: #d1003f; } .neg { color: #1565c0; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
.grid { display: flex; flex-wrap: wrap; gap: 2em; align-items: flex-start; }
.note { color: #666; font-size: 0.85em; }
"""


def figure_to_base64(fig: Figure, *, dpi: int = 100, close: bool = True) -> str:
    """PNG bytes of ``fig`` as a base64 string (closes the figure unless ``close=False``)."""
    buf = io.BytesIO()
    # No bbox_inches="tight": it draws the figure twice, and our panel figures are already
    # placed to the inch by panel_grid.
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    if close:
        plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _value_cell(v: float) -> str:
    cls = "pos" if v > 0 else "neg" if v < 0 else ""
    return f'<td class="num {cls}">{v:+.4g}</td>'


def _kv_table(rows: Mapping[str, Any]) -> str:
    body = []
    for key, value in rows.items():
        if isinstance(value, (dict, list, tuple)):
            text = json.dumps(value, default=str)
        elif isinstance(value, float):
            text = fmt(value)
        else:
            text = str(value)
        body.append(f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(text)}</td></tr>")
    return "<table>" + "".join(body) + "</table>"


def render_report(
    iv: InteractionValues,
    *,
    title: str | None = None,
    timings: Mapping[str, float] | None = None,
    settings: Mapping[str, Any] | None = None,
    n_table: int = 20,
    k_edges: int = 10,
    conditional: bool = True,
    dpi: int = 100,
    viewer_href: str | None = None,
) -> str:
    """The report as an HTML string; see :func:`write_report`."""
    t0 = time.perf_counter()
    ctx = get_context(iv)
    # Table labels carry token positions, so repeated words stay apart.
    names = [ctx.table_label(i) for i in range(ctx.n_players)]
    phi = first_order(iv)
    has_pairs = iv.max_order >= 2
    parts: list[str] = []
    heading = title or f"FIxLIP explanation ({describe(iv)})"
    parts.append(f"<h1>{html.escape(heading)}</h1>")
    if viewer_href is not None:
        parts.append(
            f'<p><a href="{html.escape(viewer_href, quote=True)}">Open the interactive '
            "viewer</a> (hover a word to see what it binds to).</p>"
        )
    if ctx.caption:
        parts.append(f'<div class="caption">Caption: “{html.escape(ctx.caption)}”</div>')

    summary = {
        "v(full) (model score of the pair)": ctx.v_full,
        "v(empty) (everything masked)": ctx.v_empty,
        "v(full) - v(empty)": (
            None if ctx.v_full is None or ctx.v_empty is None else ctx.v_full - ctx.v_empty
        ),
        "patches (grid)": "{} ({} x {})".format(ctx.n_image, *ctx.patch_grid()),
        "text tokens": ctx.n_text,
    }
    parts.append("<h2>Scores</h2>" + _kv_table({k: v for k, v in summary.items()}))

    parts.append("<h2>Joint view</h2>")
    parts.append(
        '<p class="note">Heat map and token colours: first-order values '
        "(red = raises the similarity, blue = lowers it). Edges: strongest image-text "
        "interactions.</p>"
    )
    parts.append(_img(figure_to_base64(plot_joint(iv, k=k_edges), dpi=dpi), "joint view"))

    if has_pairs and conditional and ctx.n_text > 0:
        parts.append("<h2>What each word interacts with</h2>")
        parts.append(
            '<p class="note">One panel per token: its pair interaction with every patch and '
            "token (the token outlined), one colour scale for all panels.</p>"
        )
        fig = plot_conditional_grid(iv)
        parts.append(_img(figure_to_base64(fig, dpi=dpi), "conditional maps"))

    parts.append('<h2>Top players and interactions</h2><div class="grid">')
    order = np.argsort(-np.abs(phi), kind="stable")[:n_table]
    rows = "".join(
        f"<tr><td>{r + 1}</td><td>{html.escape(names[i])}</td>{_value_cell(phi[i])}</tr>"
        for r, i in enumerate(order)
    )
    parts.append(
        "<div><h3>First-order values</h3><table><tr><th>#</th><th>player</th>"
        f"<th>φ</th></tr>{rows}</table></div>"
    )
    if has_pairs:
        pairs = top_pairs(iv, n_table, "all", n_image=ctx.n_image)
        rows = "".join(
            f"<tr><td>{r + 1}</td><td>{html.escape(names[i])}</td>"
            f"<td>{html.escape(names[j])}</td><td>{pair_kind(i, j, ctx.n_image)}</td>"
            f"{_value_cell(v)}</tr>"
            for r, (i, j, v) in enumerate(pairs)
        )
        parts.append(
            "<div><h3>Pair interactions</h3><table><tr><th>#</th><th>player</th>"
            f"<th>player</th><th>kind</th><th>e</th></tr>{rows}</table></div>"
        )
    parts.append("</div>")

    est = {
        "index": iv.index,
        "p": getattr(iv, "p", None),
        "max order": iv.max_order,
        "estimated": iv.estimated,
        "estimation budget": iv.estimation_budget,
    }
    est.update(getattr(iv, "estimation_info", None) or {})
    if settings:
        est.update(settings)
    parts.append("<h2>Settings</h2>" + _kv_table(est))

    times = dict(timings or {})
    times["report rendering"] = time.perf_counter() - t0
    parts.append(
        "<h2>Timings</h2>"
        + _kv_table({k: f"{float(v):.3f} s" for k, v in times.items()})
        + f'<p class="note">Written {html.escape(time.strftime("%Y-%m-%d %H:%M:%S"))} '
        "by fixlip_captum.</p>"
    )
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(heading)}</title><style>{_CSS}</style></head>"
        f"<body>\n{body}\n</body></html>\n"
    )


def write_report(
    iv: InteractionValues,
    path: str | Path,
    *,
    title: str | None = None,
    timings: Mapping[str, float] | None = None,
    settings: Mapping[str, Any] | None = None,
    n_table: int = 20,
    k_edges: int = 10,
    conditional: bool = True,
    dpi: int = 100,
    viewer_href: str | None = None,
) -> Path:
    """Write a self-contained HTML page explaining one image-text pair.

    The page holds the joint view, the per-word conditional maps (order-2 explanations),
    tables of the top first-order values and pair interactions, v(empty) and v(full), the
    estimation settings (``iv.index``, ``iv.p``, ``iv.estimation_info``) and timings. Figures
    are embedded as base64 PNG, so the file can be mailed or opened offline.

    Args:
        iv: Explanation with an :class:`~fixlip_captum.ExplanationContext`.
        path: Output file; must end with ``.html`` (parent folders are created).
        title: Page title (default names the index and ``p``).
        timings: ``{step: seconds}`` to list, e.g. ``{"explain": 12.3}``; the report adds its
            own rendering time.
        settings: Extra settings to list (model name, masking, ...).
        n_table: Rows in each table.
        k_edges: Interactions drawn as edges in the joint view.
        conditional: Include the per-word conditional maps.
        dpi: Resolution of the embedded figures.
        viewer_href: Link to the interactive viewer of the same explanation (e.g.
            ``"viewer.html"`` from :func:`~fixlip_captum.plot.write_viewer`), shown at the top.

    Returns:
        The path written.
    """
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"Write the report to an .html file, not {path}.")
    page = render_report(
        iv,
        title=title,
        timings=timings,
        settings=settings,
        n_table=n_table,
        k_edges=k_edges,
        conditional=conditional,
        dpi=dpi,
        viewer_href=viewer_href,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, "w", encoding="utf-8") as fh:
        fh.write(page)
    return path
