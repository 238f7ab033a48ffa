"""The interactive viewer: one self-contained HTML page built from the explanation data.

The page draws the image with its patch grid and the caption's tokens, coloured by the
first-order values; hovering or clicking a token (or clicking a patch) shows that player's
pair interactions with every other player; a slider draws the strongest image-text pairs as
lines. Several explanations of the same pair sit side by side on one colour scale.

Everything the page needs is inlined: the values (float64, base64), the display image (PNG or
JPEG, base64), and the script and style sheet shipped in ``fixlip_captum/plot/assets``. It
opens from ``file://`` without a network or a server, and in notebooks (:func:`show`).
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from shapiq import InteractionValues

from fixlip_captum.interaction_values import ExplanationContext, load_interaction_values
from fixlip_captum.plot._canvas import display_image
from fixlip_captum.plot._labels import describe
from fixlip_captum.plot._style import NEGATIVE, POSITIVE
from fixlip_captum.plot._values import first_order, main_effects, pair_matrix
from fixlip_captum.plot.comparison import same_pair

__all__ = [
    "ViewerPage",
    "load_explanations",
    "read_viewer_data",
    "render_viewer",
    "show",
    "viewer_data",
    "write_viewer",
]

_DATA_ID = "fixlip-viewer-data"
# Settings listed under each panel, in this order, when the explanation records them.
_SETTING_KEYS = (
    "estimator",
    "pairs",
    "requested_budget",
    "image_masking",
    "value",
    "mode",
    "adapter",
)
# Above this many bytes of PNG the display image is embedded as JPEG instead.
_PNG_LIMIT = 150_000

Explanations = InteractionValues | Mapping[str, InteractionValues]


def _f64(values: np.ndarray) -> str:
    """Little-endian float64 bytes of ``values`` as base64 (exact, and a third of the text)."""
    return base64.b64encode(np.ascontiguousarray(values, dtype="<f8").tobytes()).decode("ascii")


def _from_f64(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f8")


def _image_uri(img: np.ndarray) -> str:
    """The display image ``[H, W, 3]`` in ``[0, 1]`` as a ``data:`` URI."""
    pil = Image.fromarray(np.round(img * 255).astype(np.uint8), mode="RGB")
    buf = io.BytesIO()
    pil.save(buf, format="PNG", optimize=True)
    mime = "image/png"
    if buf.tell() > _PNG_LIMIT:
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=90)
        mime = "image/jpeg"
    return f"data:{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _settings(iv: InteractionValues, ctx: ExplanationContext) -> dict[str, Any]:
    """What the panel lists: index, p, budget, m_I x m_T, seed, model, v(empty), v(full)."""
    info = dict(getattr(iv, "estimation_info", None) or {})
    budget = info.get("budget", iv.estimation_budget)
    m_image, m_text = info.get("m_image"), info.get("m_text")
    rows: dict[str, Any] = {
        "index": str(iv.index),
        "p": getattr(iv, "p", None),
        "budget": budget,
        "m_I x m_T": None if m_image is None else f"{m_image} x {m_text}",
        "seed": info.get("seed"),
        "model": info.get("model", info.get("method")),
        "v(empty)": ctx.v_empty,
        "v(full)": ctx.v_full,
        "intercept e()": float(iv[()]) if () in iv.interaction_lookup else None,
    }
    for key in _SETTING_KEYS:
        if key in info:
            rows[key] = info[key]
    return {
        k: v if isinstance(v, (int, float, str, type(None))) else str(v) for k, v in rows.items()
    }


def viewer_data(explanations: Explanations, *, title: str | None = None) -> dict[str, Any]:
    """The data the page embeds (JSON-ready; values as base64 float64).

    Args:
        explanations: One explanation, or ``{name: explanation}`` of the same image-text pair
            (names become the panel titles, in this order).
        title: Page title (default: the caption).

    Returns:
        ``{"pair": {...}, "panels": [...], ...}``; see :func:`read_viewer_data` for the
        decoded form.
    """
    named = _as_mapping(explanations)
    ctx = same_pair(named)
    rows, cols = ctx.patch_grid()
    n = ctx.n_players
    img = display_image(ctx)
    ii, jj = np.triu_indices(n, k=1)
    panels = []
    for name, iv in named.items():
        has_pairs = iv.max_order >= 2
        panels.append(
            {
                "name": name,
                "order": int(iv.max_order),
                "first_order": _f64(first_order(iv)),
                "main": _f64(main_effects(iv)),
                # upper triangle, row-major: e_ij for i < j
                "pairs": _f64(pair_matrix(iv)[ii, jj]) if has_pairs else None,
                "settings": _settings(iv, getattr(iv, "context", None) or ctx),
            }
        )
    labels = [ctx.player_label(i) for i in range(ctx.n_image, n)]
    return {
        "format": "fixlip-viewer/1",
        "title": title or (f"“{ctx.caption}”" if ctx.caption else "FIxLIP explanation"),
        "colours": {"positive": POSITIVE, "negative": NEGATIVE},
        "pair": {
            "n_image": ctx.n_image,
            "n_text": ctx.n_text,
            "grid": [rows, cols],
            "tokens": labels,
            "caption": ctx.caption,
            "image": None if img is None else _image_uri(img),
            "aspect": 1.0 if img is None else img.shape[0] / img.shape[1],
        },
        "panels": panels,
    }


def _as_mapping(explanations: Explanations) -> dict[str, InteractionValues]:
    if isinstance(explanations, InteractionValues):
        return {describe(explanations): explanations}
    if not isinstance(explanations, Mapping) or not explanations:
        raise TypeError(
            "Pass an explanation or a non-empty {name: explanation} mapping of explanations "
            f"of the same pair, not {type(explanations).__name__}."
        )
    return {str(k): v for k, v in explanations.items()}


def load_explanations(
    files: Sequence[str | Path], *, image: Image.Image | None = None
) -> dict[str, InteractionValues]:
    """Load saved explanations of one pair as ``{panel name: explanation}`` for the viewer.

    Args:
        files: JSON files from :meth:`~fixlip_captum.FIxLIPInteractionValues.save`.
        image: The explained image. JSON files do not hold it; it is centre-cropped to the
            patch grid's aspect ratio (as the models' preprocessing crops) and scaled to at most
            448 pixels. Without it the patches are drawn on a grey field.

    Returns:
        Explanations named by index and ``p`` (by file name where those repeat).
    """
    if not files:
        raise ValueError("Name at least one explanation file (interactions.json).")
    loaded = [load_interaction_values(f) for f in files]
    names = [describe(iv) for iv in loaded]
    if len(set(names)) < len(names):
        names = [
            Path(f).stem if names.count(n) > 1 else n for f, n in zip(files, names, strict=True)
        ]
    if len(set(names)) < len(names):
        names = [str(f) for f in files]
    if image is not None:
        for iv in loaded:
            ctx = iv.context
            if ctx is not None and ctx.grid is not None:
                ctx.image = _fit_image(image, ctx.grid)
    return dict(zip(names, loaded, strict=True))


def _fit_image(image: Image.Image, grid: tuple[int, int], longest: int = 448) -> np.ndarray:
    """Centre crop of ``image`` with the grid's aspect ratio as ``[H, W, 3]`` in ``[0, 1]``."""
    rows, cols = grid
    w, h = image.size
    scale = min(w / cols, h / rows)
    cw, ch = cols * scale, rows * scale
    box = ((w - cw) / 2, (h - ch) / 2, (w + cw) / 2, (h + ch) / 2)
    size = min(longest, round(max(cw, ch)))
    out = image.convert("RGB").resize(
        (
            max(1, round(size * cols / max(rows, cols))),
            max(1, round(size * rows / max(rows, cols))),
        ),
        Image.Resampling.BICUBIC,
        box=box,
    )
    return np.asarray(out, dtype=float) / 255.0


def _asset(name: str) -> str:
    return (
        resources.files("fixlip_captum.plot").joinpath("assets").joinpath(name).read_text("utf-8")
    )


def render_viewer(explanations: Explanations, *, title: str | None = None, k: int = 10) -> str:
    """The viewer page as an HTML string; see :func:`write_viewer`."""
    if k < 0:
        raise ValueError(f"k (edges drawn at first) must be >= 0, not {k}.")
    data = viewer_data(explanations, title=title)
    data["k"] = int(k)
    # No "<" inside the script element (no "</script>" or "<!--" can end or change it);
    # JSON reads "\u003c" as "<".
    payload = json.dumps(data, allow_nan=False).replace("<", "\\u003c")
    heading = html.escape(data["title"])
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{heading}</title><style>{_asset('viewer.css')}</style></head>\n"
        f'<body><main id="fixlip-viewer" aria-label="FIxLIP explanation viewer"></main>\n'
        f'<script type="application/json" id="{_DATA_ID}">{payload}</script>\n'
        f"<script>{_asset('viewer.js')}</script>\n</body></html>\n"
    )


def write_viewer(
    explanations: Explanations,
    path: str | Path,
    *,
    title: str | None = None,
    k: int = 10,
) -> Path:
    """Write the interactive viewer of one or several explanations as one HTML file.

    The file is self-contained (no network, no server): open it from disk in any browser.

    Args:
        explanations: One explanation with an :class:`~fixlip_captum.ExplanationContext`, or
            ``{name: explanation}`` of the same pair (e.g. FIxLIP at several ``p``, FSII and
            baselines from :mod:`fixlip_captum.methods`), shown side by side on one scale.
        path: Output file ending in ``.html`` (parent folders are created). Written to a
            temporary file first, so an interrupted write leaves no half page.
        title: Page title (default: the caption).
        k: Strongest image-text pairs drawn as lines when the page opens (a slider changes it).

    Returns:
        The path written.
    """
    path = _html_path(path)
    return _write_page(render_viewer(explanations, title=title, k=k), path)


def _html_path(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"Write the viewer to an .html file, not {path}.")
    return path


def _write_page(page: str, path: Path) -> Path:
    """Write ``page`` through a temporary file, so an interrupted write leaves no half page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_viewer_data(page: str) -> dict[str, Any]:
    """Decode the data embedded in a viewer page (for checks and for reuse).

    Args:
        page: The HTML text of a page from :func:`render_viewer` / :func:`write_viewer`.

    Returns:
        The embedded data with every panel's ``first_order`` ``[n_players]``, ``main``
        ``[n_players]`` and ``pairs`` ``[n_players, n_players]`` (symmetric, zero diagonal;
        ``None`` for first-order methods) decoded to float64 arrays.
    """
    start_tag = f'<script type="application/json" id="{_DATA_ID}">'
    start = page.find(start_tag)
    if start < 0:
        raise ValueError("This HTML holds no fixlip viewer data (is it a viewer page?).")
    start += len(start_tag)
    data: dict[str, Any] = json.loads(page[start : page.index("</script>", start)])
    n = data["pair"]["n_image"] + data["pair"]["n_text"]
    ii, jj = np.triu_indices(n, k=1)
    for panel in data["panels"]:
        panel["first_order"] = _from_f64(panel["first_order"])
        panel["main"] = _from_f64(panel["main"])
        if panel["pairs"] is not None:
            full = np.zeros((n, n))
            full[ii, jj] = _from_f64(panel["pairs"])
            panel["pairs"] = full + full.T
    return data


class ViewerPage:
    """A rendered viewer page; notebooks display it inline (in a sandboxed ``iframe``).

    Attributes:
        html: The self-contained HTML page.
    """

    def __init__(self, page: str, *, height: int = 720) -> None:
        self.html = page
        self.height = int(height)

    def _repr_html_(self) -> str:
        # An iframe keeps the page's script and style apart from the notebook's (and from
        # other viewers in the same notebook).
        return (
            f'<iframe srcdoc="{html.escape(self.html, quote=True)}" '
            f'style="width:100%;height:{self.height}px;border:1px solid #ddd" '
            'sandbox="allow-scripts" title="FIxLIP explanation viewer"></iframe>'
        )

    def save(self, path: str | Path) -> Path:
        """Write the page to ``path`` (``.html``)."""
        return _write_page(self.html, _html_path(path))


def show(
    explanations: Explanations, *, title: str | None = None, k: int = 10, height: int = 720
) -> ViewerPage:
    """The viewer for a notebook: put ``show(iv)`` last in a cell (or ``display(show(iv))``).

    Args:
        explanations: As for :func:`write_viewer`.
        title: Page title (default: the caption).
        k: Strongest image-text pairs drawn as lines at first.
        height: Height of the inline frame in pixels.

    Returns:
        A :class:`ViewerPage` (``.html`` is the page, ``.save(path)`` writes it).
    """
    return ViewerPage(render_viewer(explanations, title=title, k=k), height=height)
