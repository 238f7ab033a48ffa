"""shapiq's plots on our explanations, with token labels, patch names and patch thumbnails.

These wrap :mod:`shapiq.plot` (they never re-implement a shapiq plot). What shapiq cannot
know about an image-text pair is added here: readable player names, a grid layout for the
patches with the caption underneath, labels for the text players (shapiq draws no labels for
nodes without a thumbnail), and caps on what is drawn (shapiq draws every edge otherwise,
which takes minutes at 200+ players). All functions pass ``show=False`` and return the figure.
"""

from __future__ import annotations

from typing import TypeVar

import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from PIL import Image
from shapiq import InteractionValues
from shapiq.plot import force_plot, sentence_plot, si_graph_plot, upset_plot, waterfall_plot

from fixlip_captum.interaction_values import ExplanationContext, make_interaction_values
from fixlip_captum.plot._canvas import patch_thumbnails
from fixlip_captum.plot._values import (
    check_kinds,
    first_order,
    get_context,
    main_effects,
    token_labels,
    top_pairs,
)

__all__ = [
    "player_names",
    "plot_force",
    "plot_sentence",
    "plot_si_graph",
    "plot_upset",
    "plot_waterfall",
]

T = TypeVar("T")


def _returned(result: T | None, name: str) -> T:
    """What a shapiq plot returned with ``show=False`` (it returns ``None`` only when it
    showed the plot itself)."""
    if result is None:
        raise RuntimeError(f"shapiq's {name} returned no figure; please report this.")
    return result


def player_names(ctx: ExplanationContext, *, short: bool = False) -> list[str]:
    """Readable names of all players: ``"patch (r, c)"`` (or ``"(r,c)"``) then the tokens."""
    names = []
    cols = ctx.patch_grid()[1]
    for i in range(ctx.n_image):
        r, c = divmod(i, cols)
        names.append(f"({r},{c})" if short else f"patch ({r}, {c})")
    return names + token_labels(ctx)


def _terms_subset(
    iv: InteractionValues, terms: list[tuple[int, ...]], values: list[float], *, n_players: int
) -> InteractionValues:
    """A plain shapiq-compatible explanation holding only the given terms."""
    return make_interaction_values(
        np.asarray(values, dtype=float),
        terms,
        n_players=n_players,
        index=iv.index,
        max_order=max((len(t) for t in terms), default=1),
        p=getattr(iv, "p", None),
        estimated=iv.estimated,
    )


def plot_si_graph(
    iv: InteractionValues,
    *,
    n_interactions: int = 30,
    edge_kinds: str = "all",
    thumbnails: bool = True,
    thumbnail_size: float | None = None,
    size_factor: float = 1.0,
    n_nodes: int | None = None,
    token_rows: int | None = None,
) -> Figure:
    """shapiq's SI graph with patches on their image grid and the caption underneath.

    Nodes are the order-1 terms (all players), edges the ``n_interactions`` strongest pair
    terms. Patches sit at their grid position (``pos``) with their image thumbnail
    (``feature_image_patches``); tokens form rows below the grid and are labelled here.

    Args:
        iv: Explanation of order <= 2 with a context.
        n_interactions: How many pair terms to draw (capped: shapiq draws every edge given).
        edge_kinds: ``"all"`` or a subset of ``("image-text", "image-image", "text-text")``.
        thumbnails: Draw each patch's thumbnail (needs ``context.image``).
        thumbnail_size: Thumbnail size as a fraction of the plot width (default: one grid
            cell).
        size_factor: Passed to shapiq: scales node and edge sizes.
        n_nodes: Main effects drawn as nodes, largest ``|e_i|`` first (endpoints of drawn
            edges always are). Default: all up to 100 players, else 60.
        token_rows: Rows for the caption tokens (default: as many as needed so tokens are at
            least one grid cell apart).

    Returns:
        The figure.
    """
    ctx = get_context(iv)
    kinds = check_kinds(edge_kinds)
    if n_interactions < 0:
        raise ValueError("n_interactions must be >= 0.")
    rows, cols = ctx.patch_grid()
    mains = main_effects(iv)
    pairs = top_pairs(iv, n_interactions, kinds, n_image=ctx.n_image)
    if n_nodes is None:
        n_nodes = iv.n_players if iv.n_players <= 100 else 60
    # nodes: the strongest main effects plus every endpoint of a drawn edge (shapiq spends
    # ~10 ms per node, so 250 nodes alone would take seconds)
    by_size = sorted(range(iv.n_players), key=lambda i: -abs(mains[i]))
    nodes = set(by_size[: max(0, n_nodes)]) | {i for i, _, _ in pairs} | {j for _, j, _ in pairs}
    terms: list[tuple[int, ...]] = [(i,) for i in sorted(nodes)]
    values = [float(mains[t[0]]) for t in terms]
    terms += [(i, j) for i, j, _ in pairs]
    values += [v for _, _, v in pairs]
    sub = _terms_subset(iv, terms, values, n_players=iv.n_players)

    # Grid positions: x = column, y = -row, tokens in rows under the image. shapiq rescales
    # each axis of ``pos`` to [0, 1] separately, so both spans are made equal to keep the
    # patch cells square.
    if token_rows is None:
        token_rows = max(1, -(-ctx.n_text // max(2, cols)))
    per_row = max(1, -(-ctx.n_text // token_rows))
    y_span = rows - 1 + 0.9 + 1.0 * (token_rows - 1)
    span = max(float(cols - 1), y_span, 1.0)
    gap = 0.9 + (span - y_span)
    pos: dict[int, np.ndarray] = {}
    for i in range(ctx.n_image):
        r, c = divmod(i, cols)
        pos[i] = np.array([c, -r], dtype=float)
    centre = (cols - 1) / 2
    for j in range(ctx.n_text):
        tr, tc = divmod(j, per_row)
        n_here = min(per_row, ctx.n_text - tr * per_row)
        step = span / max(1, per_row - 1) if per_row > 1 else 0.0
        x = centre + (tc - (n_here - 1) / 2) * step
        pos[ctx.n_image + j] = np.array([x, -(rows - 1) - gap - 1.0 * tr], dtype=float)
    xs = np.array([p[0] for p in pos.values()])
    ys = np.array([p[1] for p in pos.values()])
    x_min, y_min = xs.min(), ys.min()
    x_rng, y_rng = (xs.max() - x_min) or 1.0, (ys.max() - y_min) or 1.0
    cell = 1.0 / max(x_rng, y_rng)  # one grid step in shapiq's rescaled coordinates

    patches = None
    if thumbnails and ctx.image is not None:
        patches = [
            Image.fromarray((p * 255).round().astype(np.uint8)) for p in patch_thumbnails(ctx)
        ]
    size = thumbnail_size if thumbnail_size is not None else 0.96 * cell
    # node radius = scaling * (0.0625 + 0.025 * size_factor * |v| / max|v|) in shapiq:
    # keep empty nodes small (thumbnails stay visible) and the largest within one cell
    scaling = 1.5 * cell
    names = player_names(ctx, short=True)
    # every player is a graph node (so every patch gets its thumbnail), even without a term
    graph = nx.Graph()
    graph.add_nodes_from((i, {"label": names[i]}) for i in range(iv.n_players))
    fig, ax = _returned(
        si_graph_plot(
            sub,
            graph=graph,
            show=False,
            n_interactions=None,
            feature_names=names,
            pos=pos,
            circular_layout=False,
            size_factor=3.0 * size_factor,
            node_size_scaling=scaling,
            feature_image_patches=patches,
            feature_image_patches_size=size,
        ),
        "si_graph_plot",
    )
    if patches is not None:
        _recentre_thumbnails(ax, size)
        # shapiq labels nodes only when no thumbnails are given: label the tokens here
        for j, label in enumerate(token_labels(ctx)):
            x, y = pos[ctx.n_image + j]
            ax.text(
                (x - x_min) / x_rng,
                (y - y_min) / y_rng - 0.45 * cell,
                label,
                ha="center",
                va="top",
                fontsize=8,
                zorder=10,
            )
    pad = 1.2 * cell
    ax.set_xlim(-pad, 1 + pad)
    ax.set_ylim(-pad, 1 + pad)
    fig.set_size_inches(7, 7)
    ax.set_title(
        f"{iv.index}: main effects (nodes) and top {len(pairs)} pair interactions (edges)",
        fontsize=9,
    )
    return fig


def _recentre_thumbnails(ax: Axes, size: float) -> None:
    """Move shapiq's patch thumbnails onto their nodes.

    shapiq shifts each thumbnail radially away from the origin by ``1.55 * size`` (made for
    circular layouts, where that puts it outside the ring); on a grid this skews the image.
    The node position is recovered by undoing that shift.
    """
    half = size / 2
    for im in ax.images:
        x0, x1, y0, y1 = im.get_extent()
        c = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        norm = float(np.hypot(*c))
        node = c - 1.55 * size * c / norm if norm > 0 else c
        im.set_extent((node[0] - half, node[0] + half, node[1] - half, node[1] + half))
        im.set_zorder(0)


def plot_upset(
    iv: InteractionValues, *, n_interactions: int = 15, figsize: tuple[float, float] | None = None
) -> Figure:
    """shapiq's UpSet plot of the strongest terms, with our player names.

    Only the players that occur in the top terms get a matrix row (with 200+ players the
    full matrix would be unreadable). The intercept is left out.

    Args:
        iv: Explanation with a context.
        n_interactions: Number of terms (order 1 and 2) shown.
        figsize: Figure size; default sized by shapiq.

    Returns:
        The figure.
    """
    ctx = get_context(iv)
    if n_interactions < 1:
        raise ValueError("n_interactions must be >= 1.")
    vals = iv.values
    items = [(t, float(vals[k])) for t, k in iv.interaction_lookup.items() if len(t) > 0]
    items.sort(key=lambda tv: -abs(tv[1]))
    items = items[:n_interactions]
    sub = _terms_subset(iv, [t for t, _ in items], [v for _, v in items], n_players=iv.n_players)
    fig = upset_plot(
        sub,
        n_interactions=len(items),
        feature_names=player_names(ctx),
        all_features=False,
        color_matrix=True,
        figsize=figsize,
        show=False,
    )
    return _returned(fig, "upset_plot")


def plot_sentence(
    iv: InteractionValues,
    *,
    values: str = "first_order",
    max_score: float | None = None,
    chars_per_line: int = 60,
) -> Figure:
    """shapiq's sentence plot of the caption, coloured by each token's value.

    Args:
        iv: Explanation with a context.
        values: ``"first_order"`` (``phi``) or ``"main"`` (order-1 terms).
        max_score: Colour scale maximum (to compare captions); default the largest ``|value|``.
        chars_per_line: Wrap width in characters.

    Returns:
        The figure.
    """
    ctx = get_context(iv)
    if ctx.n_text == 0:
        raise ValueError("The explanation has no text players to plot.")
    if values == "first_order":
        text_vals = first_order(iv)[ctx.n_image :]
    elif values == "main":
        text_vals = main_effects(iv)[ctx.n_image :]
    else:
        raise ValueError(f"values must be 'first_order' or 'main', not {values!r}.")
    terms: list[tuple[int, ...]] = [(j,) for j in range(ctx.n_text)]
    sub = _terms_subset(iv, terms, list(text_vals), n_players=ctx.n_text)
    if max_score is None:
        max_score = float(np.max(np.abs(text_vals))) or 1.0
    fig, _ = _returned(
        sentence_plot(
            sub,
            token_labels(ctx),
            chars_per_line=chars_per_line,
            max_score=max_score,
            show=False,
        ),
        "sentence_plot",
    )
    return fig


def _top_players_explanation(iv: InteractionValues, k: int) -> tuple[InteractionValues, list[str]]:
    """Top-``k`` players by ``|phi|`` plus "rest" terms, summing to the surrogate's v(full).

    Returns an explanation whose order-1 terms are the top players' first-order values, one
    term for all other players, and (for ``p != 0.5``, where weighted Banzhaf values do not
    add up) one term for the remainder ``(1 - 2p) sum e_ij``; its baseline is the intercept.
    """
    ctx = get_context(iv)
    if k < 1:
        raise ValueError("k must be >= 1.")
    phi = first_order(iv)
    vals = iv.values
    total = float(np.sum(vals))  # surrogate at the grand coalition (intercept included)
    intercept = float(vals[iv.interaction_lookup[()]]) if () in iv.interaction_lookup else 0.0
    order = np.argsort(-np.abs(phi), kind="stable")
    top = order[: min(k, iv.n_players)]
    rest = order[len(top) :]
    names_all = player_names(ctx)
    values = [float(phi[i]) for i in top]
    names = [names_all[i] for i in top]
    if len(rest):
        values.append(float(phi[rest].sum()))
        names.append(f"{len(rest)} other players")
    remainder = total - intercept - float(phi.sum())
    if abs(remainder) > 1e-9 * max(1.0, abs(total)):
        values.append(remainder)
        names.append("pair remainder")
    n = len(values)
    terms = [()] + [(i,) for i in range(n)]
    sub = make_interaction_values(
        np.array([intercept, *values]), terms, n_players=n, index=iv.index, max_order=1
    )
    return sub, names


def plot_force(
    iv: InteractionValues, *, k: int = 8, figsize: tuple[float, float] = (15, 4)
) -> Figure:
    """shapiq's force plot of the ``k`` players with the largest ``|phi|``.

    The remaining players are one aggregated term and, for order-2 explanations with
    ``p != 0.5``, a "pair remainder" term makes the bar end at the surrogate's value of the
    full pair (baseline = fitted intercept).

    Args:
        iv: Explanation with a context.
        k: Number of players shown individually.
        figsize: Figure size in inches.

    Returns:
        The figure.
    """
    sub, names = _top_players_explanation(iv, k)
    fig = force_plot(
        sub,
        feature_names=names,
        abbreviate=False,
        figsize=figsize,  # type: ignore[arg-type]  # shapiq types it as ints; floats work
        show=False,
    )
    return _returned(fig, "force_plot")


def plot_waterfall(iv: InteractionValues, *, k: int = 10) -> Figure:
    """shapiq's waterfall plot of the ``k`` players with the largest ``|phi|``.

    Same terms as :func:`plot_force`.

    Args:
        iv: Explanation with a context.
        k: Number of players shown individually.

    Returns:
        The figure.
    """
    sub, names = _top_players_explanation(iv, k)
    # shapiq's waterfall draws on pyplot's current figure: give it a fresh one
    fig = plt.figure()
    waterfall_plot(
        sub, feature_names=names, abbreviate=False, max_display=len(names) + 1, show=False
    )
    return fig
