"""Tests for fixlip_captum.plot: every figure renders, and values land on the right pixels."""

from __future__ import annotations

import io
import re
import shutil
import subprocess

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import to_rgb
from PIL import Image

import fixlip_captum.plot as fplot
from fixlip_captum.interaction_values import (
    ExplanationContext,
    make_interaction_values,
    require_context,
)
from fixlip_captum.metrics import greedy_order
from fixlip_captum.plot._style import POSITIVE, VALUE_CMAP
from fixlip_captum.plot._values import top_pairs
from fixlip_captum.plot.shapiq_plots import _top_players_explanation

WORDS_7 = ["a", "red", "circle", "and", "a", "blue", "square"]
WORDS_20 = (
    "a photo of a small red circle next to a big blue square on green grass under the sky today"
).split()


# --------------------------------------------------------------------------------------------
# synthetic explanations


def _scene(size: int = 112) -> np.ndarray:
    """A display image: sky, grass, a red disc and a blue square ([H, W, 3] in [0, 1])."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.empty((size, size, 3))
    img[:] = (0.85, 0.88, 0.92)
    img[yy > 0.7] = (0.55, 0.75, 0.45)
    img[(xx - 0.3) ** 2 + (yy - 0.4) ** 2 < 0.12**2] = (0.9, 0.15, 0.15)
    img[(np.abs(xx - 0.7) < 0.1) & (np.abs(yy - 0.55) < 0.1)] = (0.15, 0.3, 0.9)
    return img


def _context(rows, cols, words, image=None, **kw) -> ExplanationContext:
    return ExplanationContext(
        n_image=rows * cols,
        n_text=len(words),
        grid=(rows, cols),
        token_labels=list(words),
        v_empty=kw.get("v_empty", 0.25),
        v_full=kw.get("v_full", 3.5),
        caption=" ".join(words),
        image=_scene() if image is None else image,
    )


def _random_iv(rows, cols, words, *, seed=0, p=0.5, index="FWBII"):
    """Dense random order-2 explanation (every pair present)."""
    rng = np.random.default_rng(seed)
    n = rows * cols + len(words)
    terms = [(), *((i,) for i in range(n))]
    terms += [(i, j) for i in range(n) for j in range(i + 1, n)]
    vals = rng.normal(0.0, 0.05, len(terms))
    vals[0] = 1.0
    vals[1 : n + 1] *= 4
    return make_interaction_values(
        vals,
        terms,
        n_players=n,
        index=index,
        max_order=2,
        p=p,
        estimation_info={"method": "synthetic", "budget": 1024},
        context=_context(rows, cols, words),
    )


def _sparse_iv(rows, cols, words, terms_values, *, image=None, p=0.5, max_order=2):
    terms = [t for t, _ in terms_values]
    vals = [v for _, v in terms_values]
    n = rows * cols + len(words)
    return make_interaction_values(
        vals,
        terms,
        n_players=n,
        index="FWBII",
        max_order=max_order,
        p=p,
        context=_context(rows, cols, words, image=image),
    )


@pytest.fixture(scope="module")
def iv49():
    return _random_iv(7, 7, WORDS_7)


@pytest.fixture(scope="module")
def iv196():
    return _random_iv(14, 14, WORDS_20, seed=1)


@pytest.fixture(autouse=True)
def _no_show_and_close(monkeypatch):
    def _fail(*_, **__):
        raise AssertionError("plot functions must never call plt.show()")

    monkeypatch.setattr(plt, "show", _fail)
    yield
    plt.close("all")


def _rgb(fig) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(float) / 255.0


def _png_size(fig, dpi=60) -> tuple[int, int]:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        return im.size


def _cell_pixels(rgb, ax, rows, cols, width, height, r, c, inset=0.3) -> np.ndarray:
    """The inner pixels of patch (r, c) of a canvas whose image spans ``width x height``."""
    pw, ph = width / cols, height / rows
    (x0, y0), (x1, y1) = ax.transData.transform(
        [
            (c * pw + inset * pw, r * ph + inset * ph),
            ((c + 1) * pw - inset * pw, (r + 1) * ph - inset * ph),
        ]
    )
    h = rgb.shape[0]
    ya, yb = sorted((h - y0, h - y1))
    xa, xb = sorted((x0, x1))
    return rgb[int(np.ceil(ya)) : int(yb), int(np.ceil(xa)) : int(xb)]


# --------------------------------------------------------------------------------------------
# values land on the right pixels


@pytest.mark.parametrize(
    ("rows", "cols", "words", "hot"), [(7, 7, WORDS_7, 3 * 7 + 5), (14, 14, WORDS_20, 2 * 14 + 11)]
)
def test_one_hot_patch_lights_exactly_that_patch(rows, cols, words, hot):
    grey = np.full((112, 112, 3), 0.5)
    iv = _sparse_iv(rows, cols, words, [((), 0.0), ((hot,), 2.0)], image=grey, max_order=1)
    fig = fplot.plot_joint(iv, k=0)
    ax = fig.axes[0]
    rgb = _rgb(fig)
    # full value: the overlay is 85% of the positive colour over the grey image
    expected = 0.85 * np.array(to_rgb(POSITIVE)) + 0.15 * 0.5
    hot_r, hot_c = divmod(hot, cols)
    for r in range(rows):
        for c in range(cols):
            px = _cell_pixels(rgb, ax, rows, cols, 112, 112, r, c)
            assert px.size > 0
            mean = px.reshape(-1, 3).mean(axis=0)
            if (r, c) == (hot_r, hot_c):
                np.testing.assert_allclose(mean, expected, atol=0.02)
            else:
                np.testing.assert_allclose(mean, [0.5, 0.5, 0.5], atol=0.01)


def test_heat_scale_is_symmetric_and_proportional():
    # +1 and -0.5 on two patches: the negative cell gets half the opacity in blue
    grey = np.full((70, 70, 3), 1.0)
    iv = _sparse_iv(7, 7, WORDS_7, [((), 0.0), ((8,), 1.0), ((40,), -0.5)], image=grey, max_order=1)
    fig = fplot.plot_joint(iv, k=0)
    ax = fig.axes[0]
    rgb = _rgb(fig)
    pos = _cell_pixels(rgb, ax, 7, 7, 70, 70, 1, 1).reshape(-1, 3).mean(0)
    neg = _cell_pixels(rgb, ax, 7, 7, 70, 70, 5, 5).reshape(-1, 3).mean(0)
    # over white, alpha a of colour c gives 1 - a (1 - c)
    blue = np.array(to_rgb("#1e88e5"))
    np.testing.assert_allclose(pos, 1 - 0.85 * (1 - np.array(to_rgb(POSITIVE))), atol=0.02)
    np.testing.assert_allclose(neg, 1 - 0.425 * (1 - blue), atol=0.02)
    # colour bar spans [-1, 1]
    cbar_ax = fig.axes[1]
    assert cbar_ax.get_ylim() == pytest.approx((-1.0, 1.0))


def test_token_boxes_take_their_values_colour():
    n_img = 49
    iv = _sparse_iv(
        7, 7, WORDS_7, [((), 0.0), ((n_img + 1,), 3.0), ((n_img + 5,), -1.5)], max_order=1
    )
    fig = fplot.plot_joint(iv, k=0)
    ax = fig.axes[0]
    coll = next(c for c in ax.collections if len(c.get_paths()) == len(WORDS_7))
    faces = coll.get_facecolors()
    np.testing.assert_allclose(faces[1], VALUE_CMAP(1.0), atol=1e-6)  # 'red' at +max
    np.testing.assert_allclose(faces[5], VALUE_CMAP(0.25), atol=1e-6)  # 'blue' at -max/2
    np.testing.assert_allclose(faces[0], VALUE_CMAP(0.5), atol=1e-6)  # zero -> white
    labels = [t.get_text() for t in ax.texts]
    assert labels == WORDS_7


def test_first_order_view_includes_pairs():
    # phi_i = e_i + p * sum_j e_ij; with p=0.3, e_0 = 1 and e_{0,49} = 2: phi_0 = 1.6
    iv = _sparse_iv(7, 7, WORDS_7, [((), 0.0), ((0,), 1.0), ((0, 49), 2.0)], p=0.3)
    np.testing.assert_allclose(iv.first_order()[[0, 49]], [1.6, 0.6])
    fig = fplot.plot_joint(iv, k=1)
    ax = fig.axes[0]
    assert "max +2" in ax.get_title()
    # the colour bar covers first-order values only unless joint_scale
    assert fig.axes[1].get_ylim() == pytest.approx((-1.6, 1.6))
    fig = fplot.plot_joint(iv, k=1, joint_scale=True)
    assert fig.axes[1].get_ylim() == pytest.approx((-2.0, 2.0))


def test_conditional_map_lights_the_partner_patch_and_outlines_the_word():
    grey = np.full((112, 112, 3), 0.5)
    word = 49 + 2  # "circle"
    iv = _sparse_iv(
        7,
        7,
        WORDS_7,
        [((), 0.0), ((10,), 5.0), ((17, word), 0.8), ((word, 49 + 5), -0.4)],
        image=grey,
    )
    fig = fplot.plot_conditional(iv, "circle")
    ax = fig.axes[0]
    rgb = _rgb(fig)
    expected = 0.85 * np.array(to_rgb(POSITIVE)) + 0.15 * 0.5
    for r in range(7):
        for c in range(7):
            mean = _cell_pixels(rgb, ax, 7, 7, 112, 112, r, c).reshape(-1, 3).mean(0)
            if r * 7 + c == 17:
                np.testing.assert_allclose(mean, expected, atol=0.02)
            else:  # patch 10 has a main effect but no interaction with 'circle'
                np.testing.assert_allclose(mean, 0.5, atol=0.01)
    coll = next(c for c in ax.collections if len(c.get_paths()) == len(WORDS_7))
    np.testing.assert_allclose(coll.get_facecolors()[5], VALUE_CMAP(0.25), atol=1e-6)
    assert "'circle'" in ax.get_title()
    # the outline: one thick patch around the token box (zorder 9)
    outlines = [p for p in ax.patches if p.get_zorder() == 9]
    assert len(outlines) == 1
    with pytest.raises(ValueError, match="No token 'dog'"):
        fplot.plot_conditional(iv, "dog")


def test_conditional_grid_has_one_panel_per_word(iv196):
    fig = fplot.plot_conditional_grid(iv196, ncols=5)
    titled = [a for a in fig.axes if a.get_title().startswith("interactions with")]
    assert len(titled) == 20
    assert [t.get_title().split("'")[1] for t in titled] == WORDS_20
    with pytest.raises(ValueError, match="max_order=1"):
        iv1 = _sparse_iv(7, 7, WORDS_7, [((0,), 1.0)], max_order=1)
        fplot.plot_conditional_grid(iv1)


def test_top_pairs_selects_by_kind_and_magnitude():
    n_img = 49
    iv = _sparse_iv(
        7,
        7,
        WORDS_7,
        [((0, n_img), 0.5), ((1, 2), -0.9), ((n_img, n_img + 1), 0.3), ((3, n_img + 2), -0.7)],
    )
    assert top_pairs(iv, 5, "all", n_image=n_img) == [
        (1, 2, -0.9),
        (3, n_img + 2, -0.7),
        (0, n_img, 0.5),
        (n_img, n_img + 1, 0.3),
    ]
    assert top_pairs(iv, 1, "image-text", n_image=n_img) == [(3, n_img + 2, -0.7)]
    assert top_pairs(iv, 5, ["text-text"], n_image=n_img) == [(n_img, n_img + 1, 0.3)]
    assert top_pairs(iv, 5, "all", n_image=n_img, sign="positive") == [
        (0, n_img, 0.5),
        (n_img, n_img + 1, 0.3),
    ]
    with pytest.raises(ValueError, match="Unknown edge kind"):
        top_pairs(iv, 5, "patch-word", n_image=n_img)


def test_edges_end_at_patch_centre_and_token(iv49):
    n_img = 49
    iv = _sparse_iv(7, 7, WORDS_7, [((), 0.0), ((2, 6), 0.5), ((23, n_img + 3), -1.0)])
    fig = fplot.plot_joint(iv, k=5, edge_kinds="all")
    ax = fig.axes[0]
    from matplotlib.patches import FancyArrowPatch

    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == 2
    strong = max(arrows, key=lambda a: a.get_linewidth())
    start = strong._posA_posB[0]
    # patch 23 is row 3, col 2 of a 7x7 grid on a 112-pixel image: centre (40, 56)
    assert start == pytest.approx((2.5 * 16, 3.5 * 16))
    assert to_rgb(strong.get_edgecolor()) == pytest.approx(to_rgb("#1e88e5"))


# --------------------------------------------------------------------------------------------
# shapiq plots


def test_si_graph_thumbnails_sit_on_their_grid_cells(iv49):
    fig = fplot.plot_si_graph(iv49, n_interactions=10)
    ax = fig.axes[0]
    assert len(ax.images) == 49
    centres = np.array(
        [[(e[0] + e[1]) / 2, (e[2] + e[3]) / 2] for e in (im.get_extent() for im in ax.images)]
    )
    # on a grid: 7 distinct x and 7 distinct y positions, equally spaced, square cells
    xs, ys = np.unique(centres[:, 0].round(6)), np.unique(centres[:, 1].round(6))
    assert len(xs) == 7 and len(ys) == 7
    np.testing.assert_allclose(np.diff(xs), np.diff(xs)[0], rtol=1e-4)
    np.testing.assert_allclose(np.diff(ys), np.diff(xs)[0], rtol=1e-4)
    # thumbnail of player 0 (top-left) is the top-left crop of the image
    i0 = int(np.argmin(centres[:, 0] - 10 * centres[:, 1]))
    crop = (_scene()[:16, :16] * 255).round()
    np.testing.assert_array_equal(np.asarray(ax.images[i0].get_array())[..., :3], crop)
    # every token labelled
    assert {t.get_text() for t in ax.texts} >= set(WORDS_7)


def test_upset_shows_top_terms_with_player_names(iv49):
    fig = fplot.plot_upset(iv49, n_interactions=6)
    bars = fig.axes[0].patches
    vals = iv49.values
    expected = sorted((float(vals[k]) for t, k in iv49.interaction_lookup.items() if t), key=abs)[
        ::-1
    ][:6]
    np.testing.assert_allclose([b.get_height() for b in bars], expected)
    names = [t.get_text() for t in fig.axes[1].get_yticklabels()]
    assert all(re.fullmatch(r"patch \(\d, \d\)", n) or n in WORDS_7 for n in names)


def test_sentence_plot_alpha_follows_first_order(iv49):
    fig = fplot.plot_sentence(iv49)
    ax = fig.axes[0]
    boxes = [p for p in ax.patches if p.get_zorder() == -1]
    assert len(boxes) == len(WORDS_7)
    phi = iv49.first_order()[49:]
    np.testing.assert_allclose([b.get_alpha() for b in boxes], np.abs(phi) / np.abs(phi).max())


@pytest.mark.parametrize("p", [0.5, 0.3])
def test_force_terms_add_up_to_the_surrogate(iv49, p):
    iv = _random_iv(7, 7, WORDS_7, p=p, seed=3)
    sub, names = _top_players_explanation(iv, 5)
    phi = iv.first_order()
    top = np.argsort(-np.abs(phi))[:5]
    np.testing.assert_allclose(sub.values[1:6], phi[top])
    assert names[5] == "51 other players"
    # all terms together = the surrogate at the full coalition
    assert float(np.sum(sub.values)) == pytest.approx(float(np.sum(iv.values)))
    if p == 0.5:
        assert len(names) == 6
    else:  # remainder (1 - 2p) * sum of pair terms
        pair_sum = sum(float(iv.values[k]) for t, k in iv.interaction_lookup.items() if len(t) == 2)
        assert names[-1] == "pair remainder"
        assert sub.values[-1] == pytest.approx((1 - 2 * p) * pair_sum)


# --------------------------------------------------------------------------------------------
# every figure renders at 49 and at 196 patches + 20 tokens


def _all_figures(iv):
    fo = make_interaction_values(
        iv.first_order(),
        [(i,) for i in range(iv.n_players)],
        n_players=iv.n_players,
        index="GradECLIP",
        max_order=1,
        context=iv.context,
    )
    return {
        "joint": lambda: fplot.plot_joint(iv, k=10, edge_kinds="all"),
        "conditional": lambda: fplot.plot_conditional(iv, iv.context.n_image + 1),
        "conditional_grid": lambda: fplot.plot_conditional_grid(iv),
        "si_graph": lambda: fplot.plot_si_graph(iv, n_interactions=15),
        "upset": lambda: fplot.plot_upset(iv),
        "sentence": lambda: fplot.plot_sentence(iv),
        "force": lambda: fplot.plot_force(iv),
        "waterfall": lambda: fplot.plot_waterfall(iv),
        "comparison": lambda: fplot.plot_comparison({"FIxLIP": iv, "Grad-ECLIP": fo}),
        "cliques": lambda: fplot.plot_cliques(iv, 8),
    }


@pytest.mark.parametrize("which", ["iv49", "iv196"])
def test_every_figure_renders_to_png(which, request):
    iv = request.getfixturevalue(which)
    for name, make in _all_figures(iv).items():
        fig = make()
        w_in, h_in = fig.get_size_inches()
        assert 2.0 < w_in < 25 and 0.3 < h_in < 40, name
        w, h = _png_size(fig, dpi=40)
        assert abs(w - w_in * 40) <= 1 and abs(h - h_in * 40) <= 1, name
        plt.close(fig)


def test_panel_sizes_follow_caption_length(iv49, iv196):
    # same width; the 20-token caption wraps onto more rows, so the figure is taller
    f49 = fplot.plot_joint(iv49)
    f196 = fplot.plot_joint(iv196)
    assert f49.get_size_inches()[0] == pytest.approx(f196.get_size_inches()[0])
    assert f196.get_size_inches()[1] > f49.get_size_inches()[1]
    # the caption stays inside the image width
    ax = f196.axes[0]
    f196.canvas.draw()
    r = f196.canvas.get_renderer()
    right = ax.transData.transform((112, 0))[0]
    assert max(t.get_window_extent(r).x1 for t in ax.texts) <= right + 1


# --------------------------------------------------------------------------------------------
# comparison and cliques


def test_comparison_rows_and_same_pair_check(iv49, iv196):
    fig = fplot.plot_comparison({"A": iv49, "B": _random_iv(7, 7, WORDS_7, seed=5, p=0.7)})
    row_labels = [t.get_text() for a in fig.axes for t in a.texts if t.get_rotation() == 90]
    assert row_labels == ["A", "B"]
    # one colour bar per row, each symmetric around 0 at that row's max |phi|
    cbars = [a for a in fig.axes if getattr(a, "_colorbar", None) is not None]
    assert len(cbars) == 2
    assert cbars[0].get_ylim() == pytest.approx(
        (-np.abs(iv49.first_order()).max(), np.abs(iv49.first_order()).max())
    )
    with pytest.raises(ValueError, match="same pair"):
        fplot.plot_comparison({"A": iv49, "B": iv196})


def test_cliques_use_the_metrics_greedy_order(iv49):
    most, least = fplot.clique_members(iv49, 6)
    np.testing.assert_array_equal(
        np.flatnonzero(most), np.sort(greedy_order(iv49, "insertion")[:6])
    )
    np.testing.assert_array_equal(
        np.flatnonzero(least), np.sort(greedy_order(iv49, "deletion")[:6])
    )
    with pytest.raises(ValueError, match="size must be"):
        fplot.clique_members(iv49, 0)


def test_clique_view_greys_out_everything_else():
    # patches 3 and 4 form the best clique (large pair term); the image is pure red
    red = np.zeros((112, 112, 3))
    red[..., 0] = 1.0
    iv = _sparse_iv(
        7,
        7,
        WORDS_7,
        [((), 0.0), ((3,), 0.2), ((4,), 0.1), ((3, 4), 2.0), ((20,), -3.0)],
        image=red,
    )
    fig = fplot.plot_cliques(iv, 2)
    ax_most, ax_least = fig.axes[:2]
    rgb = _rgb(fig)
    assert "2 patches + 0 tokens" in ax_most.get_title()
    assert "surrogate value 2.3" in ax_most.get_title()
    for r in range(7):
        for c in range(7):
            mean = (
                _cell_pixels(rgb, ax_most, 7, 7, 112, 112, r, c, inset=0.35).reshape(-1, 3).mean(0)
            )
            if r * 7 + c in (3, 4):
                np.testing.assert_allclose(mean, [1, 0, 0], atol=0.02)
            else:
                assert mean[0] - mean[1] < 0.15  # grey, not red
    # least similar: patch 20 (-3), then the lowest-index zero-gain player, patch 0
    assert "2 patches + 0 tokens" in ax_least.get_title()
    assert "surrogate value -3" in ax_least.get_title()


# --------------------------------------------------------------------------------------------
# errors


def test_plots_need_a_context():
    iv = make_interaction_values([1.0], [(0,)], n_players=3, index="FWBII", max_order=1)
    with pytest.raises(ValueError, match="ExplanationContext"):
        fplot.plot_joint(iv)
    with pytest.raises(ValueError, match="'first_order' or 'main'"):
        fplot.plot_joint(_sparse_iv(7, 7, WORDS_7, [((0,), 1.0)]), values="phi")


def test_plots_need_a_patch_grid():
    ctx = ExplanationContext(n_image=4, n_text=1, token_labels=["cat"])  # grid unknown
    iv = make_interaction_values(
        [1.0, 2.0], [(0,), (4,)], n_players=5, index="FWBII", max_order=1, context=ctx
    )
    assert require_context(iv) is ctx
    assert ctx.player_label(2) == "patch 2"
    for plot in (fplot.plot_joint, fplot.plot_sentence, fplot.plot_waterfall):
        with pytest.raises(ValueError, match="no patch grid"):
            plot(iv)
    ctx.grid = (2, 2)
    assert ctx.patch_grid() == (2, 2)
    assert ctx.player_label(3) == "patch (1, 1)"


# --------------------------------------------------------------------------------------------
# HTML report


def test_report_is_self_contained(tmp_path, iv49):
    path = fplot.write_report(
        iv49, tmp_path / "out" / "report.html", timings={"explain": 1.25}, settings={"model": "toy"}
    )
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 2  # joint view and conditional maps
    import base64

    for b64 in images:
        with Image.open(io.BytesIO(base64.b64decode(b64))) as im:
            assert im.size[0] > 300 and im.size[1] > 300
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "v(full)" in page and ">3.5<" in page and ">0.25<" in page
    assert "1.250 s" in page and "report rendering" in page
    assert ">synthetic<" in page and ">toy<" in page and ">0.5<" in page
    # the table's first pair is the strongest pair term
    top = top_pairs(iv49, 1, "all", n_image=49)[0]
    assert f"{top[2]:+.4g}" in page
    # first-order explanations: no conditional maps, no pair table
    fo = make_interaction_values(
        iv49.first_order(),
        [(i,) for i in range(iv49.n_players)],
        n_players=iv49.n_players,
        index="GradECLIP",
        max_order=1,
        context=iv49.context,
    )
    page = fplot.write_report(fo, tmp_path / "fo.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 1
    assert "Pair interactions" not in page and "GradECLIP" in page
    with pytest.raises(ValueError, match=r"\.html"):
        fplot.write_report(iv49, tmp_path / "report.png")


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Chromium not installed")
def test_report_renders_in_headless_chromium(tmp_path, iv49):
    path = fplot.write_report(iv49, tmp_path / "report.html", conditional=False)
    shot = tmp_path / "shot.png"
    cmd = [
        shutil.which("chromium"),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1000,1400",
        f"--screenshot={shot}",
        path.resolve().as_uri(),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    with Image.open(shot) as im:
        arr = np.asarray(im.convert("RGB"), dtype=float) / 255
    assert arr.shape[:2] == (1400, 1000)
    # the embedded joint view is drawn: the page holds the positive colour somewhere
    red = np.all(np.abs(arr - np.array(to_rgb(POSITIVE))) < 0.12, axis=-1)
    assert red.sum() > 50
    assert arr.std() > 0.1


# --------------------------------------------------------------------------------------------
# a real explanation from the shipped default model


@pytest.fixture(scope="module")
def real_explanation():
    from fixlip_captum import models

    if not models.CHECKPOINT_PATH.is_file():
        pytest.skip("the default model's weights are not in this checkout")
    from fixlip_captum.attr import FIxLIP
    from fixlip_captum.scenes import generate_sample

    model, _, tokenizer = models.load_default()
    sample = generate_sample(7, n_objects=3, n_named=2)
    iv = FIxLIP(model, tokenizer).attribute_interactions(
        sample.image, sample.text, p=0.5, budget=2**11, seed=0, pairs="crossmodal"
    )
    return sample, iv


def test_figures_of_a_real_explanation(real_explanation, tmp_path):
    sample, iv = real_explanation
    ctx = iv.context
    assert ctx.grid == (6, 6)
    assert ctx.token_labels == sample.words
    assert ctx.image.shape == (96, 96, 3)
    phi = iv.first_order()
    vmax = np.abs(phi).max()

    fig = fplot.plot_joint(iv, k=6)
    ax = fig.axes[0]
    # the heat map's cells are the first-order values of the patches, row-major
    overlay = np.asarray(ax.images[1].get_array())
    assert overlay.shape == (6, 6, 4)
    np.testing.assert_allclose(overlay[..., 3], 0.85 * np.abs(phi[:36]).reshape(6, 6) / vmax)
    reds = np.isclose(overlay[..., 0], to_rgb(POSITIVE)[0])
    np.testing.assert_array_equal(reds, phi[:36].reshape(6, 6) >= 0)
    # token boxes carry the tokens' first-order values on the same scale
    coll = next(c for c in ax.collections if len(c.get_paths()) == len(sample.words))
    np.testing.assert_allclose(
        coll.get_facecolors(), VALUE_CMAP((phi[36:] / vmax + 1) / 2), atol=1e-6
    )
    # the explanation names the object's colour: the colour word of the first named
    # object interacts most with a patch that object covers
    first_named = sample.named[0]
    word = next(j for j, o in enumerate(sample.word_objects) if o == first_named)
    row = fplot.draw_conditional(plt.figure().add_subplot(), iv, 36 + word)
    assert row > 0
    from fixlip_captum.plot._values import interaction_row

    best_patch = int(np.argmax(interaction_row(iv, 36 + word)[:36]))
    assert sample.patch_coverage(first_named, (6, 6))[best_patch] > 0

    for make in (
        lambda: fplot.plot_conditional_grid(iv),
        lambda: fplot.plot_si_graph(iv, n_interactions=10),
        lambda: fplot.plot_cliques(iv, 6),
    ):
        w, h = _png_size(make())
        assert w > 100 and h > 100
    path = fplot.write_report(iv, tmp_path / "real.html", timings={"explain": 1.0})
    page = path.read_text(encoding="utf-8")
    assert f"{ctx.v_full:.4g}" in page and "OpenCLIPAdapter" in page
