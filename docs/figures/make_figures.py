"""Regenerate the PNG figures shown in the README and the docs.

Run from the repository root::

    OMP_NUM_THREADS=1 python docs/figures/make_figures.py            # default model if shipped
    OMP_NUM_THREADS=1 python docs/figures/make_figures.py --synthetic

With the shipped model (``fixlip_captum.models.load_default``) the figures explain a real
image-text pair from the scene generator with FIxLIP and the baselines. ``--synthetic`` (or
a checkout without the model weights) draws a hand-made explanation built from the scene's
ground truth instead: it shows what the plots look like, not what any model does, and every
figure says so in its file name (``*_synthetic.png``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import fixlip_captum.plot as fplot  # noqa: E402
from fixlip_captum.interaction_values import (  # noqa: E402
    ExplanationContext,
    make_interaction_values,
)
from fixlip_captum.scenes import generate_sample  # noqa: E402

OUT = Path(__file__).resolve().parent
SEED = 7  # scene seed used for every figure


def _save(fig, name: str, dpi: int = 110) -> None:
    path = OUT / name
    fig.savefig(path, dpi=dpi, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    print(f"wrote {path.relative_to(ROOT)}")


# --------------------------------------------------------------------------------------------
# synthetic explanation from ground truth


def synthetic_explanation(grid: int, *, p: float = 0.5, seed: int = SEED, noise: float = 0.02):
    """A hand-made order-2 explanation of a generated scene (no model involved).

    Patches of each named object get a positive main effect and a positive interaction with
    the object's colour and shape words; unnamed objects get small negative effects; every
    other term is small Gaussian noise.
    """
    sample = generate_sample(seed, n_objects=3, n_named=2, image_size=224)
    words = sample.words
    n_img, n_txt = grid * grid, len(words)
    n = n_img + n_txt
    rng = np.random.default_rng(seed)
    first = rng.normal(0, noise, n)
    pairs = rng.normal(0, noise / 2, (n, n))
    pairs = np.triu(pairs, 1)
    word_obj = sample.word_objects
    for k in range(len(sample.objects)):
        cover = sample.patch_coverage(k, grid)
        named_words = [n_img + j for j, o in enumerate(word_obj) if o == k]
        if named_words:
            first[:n_img] += 0.6 * cover
            for w in named_words:
                first[w] += 0.5
                pairs[:n_img, w] += 1.2 * cover * rng.uniform(0.6, 1.0)
            # the object's patches also bind together
            idx = np.flatnonzero(cover > 0.5)
            for a in idx:
                for b in idx:
                    if a < b:
                        pairs[a, b] += 0.15
        else:
            first[:n_img] -= 0.25 * cover
    terms: list[tuple[int, ...]] = [(), *((i,) for i in range(n))]
    values = [0.8, *first]
    ii, jj = np.triu_indices(n, 1)
    terms += [(int(i), int(j)) for i, j in zip(ii, jj, strict=True)]
    values += list(pairs[ii, jj])
    vals = np.asarray(values)
    v_full = float(vals.sum())
    ctx = ExplanationContext(
        n_image=n_img,
        n_text=n_txt,
        grid=(grid, grid),
        token_labels=list(words),
        v_empty=0.8,
        v_full=v_full,
        caption=sample.text,
        image=sample.array.astype(float) / 255.0,
    )
    return make_interaction_values(
        vals,
        terms,
        n_players=n,
        index="FWBII",
        max_order=2,
        p=p,
        estimated=False,
        estimation_info={"method": "synthetic (ground truth, no model)"},
        context=ctx,
    )


def synthetic_first_order(iv, name: str, seed: int):
    """A noisy first-order map standing in for a baseline (synthetic figures only)."""
    rng = np.random.default_rng(seed)
    phi = iv.first_order() + rng.normal(0, 0.15, iv.n_players)
    return make_interaction_values(
        phi,
        [(i,) for i in range(iv.n_players)],
        n_players=iv.n_players,
        index=name,
        max_order=1,
        context=iv.context,
    )


# --------------------------------------------------------------------------------------------
# real explanations on the shipped model


def real_explanations(budget: int):
    from fixlip_captum import FIxLIP
    from fixlip_captum.methods import get_method
    from fixlip_captum.models import load_default

    model, _, tokenizer = load_default()
    sample = generate_sample(SEED, n_objects=3, n_named=2)
    explainer = FIxLIP(model, tokenizer)
    timings: dict[str, float] = {}
    out = {}
    for p in (0.3, 0.5, 0.7):
        t0 = time.perf_counter()
        out[f"FIxLIP p={p}"] = explainer.attribute_interactions(
            sample.image, sample.text, p=p, budget=budget, seed=0
        )
        timings[f"FIxLIP p={p}"] = time.perf_counter() - t0
    for name, label in (
        ("fsii", "FSII"),
        ("shapley_values", "Shapley values"),
        ("grad_eclip", "Grad-ECLIP"),
        ("game", "GAME"),
        ("exclip", "exCLIP"),
    ):
        t0 = time.perf_counter()
        try:
            out[label] = get_method(name, model, tokenizer).attribute_interactions(
                sample.image, sample.text
            )
            timings[label] = time.perf_counter() - t0
        except Exception as err:  # a baseline failing must not stop the figures
            print(f"skipping {label}: {err}")
    return out, timings


def viewer_figure(methods: dict, suffix: str) -> None:
    """``viewer.html`` (FIxLIP at three p, FSII, Grad-ECLIP side by side) and its screenshot
    ``viewer.png`` after clicking the colour word of the first named object (headless
    chromium through playwright; skipped without them)."""
    import shutil

    keep = [k for k in ("FIxLIP p=0.3", "FIxLIP p=0.5", "FIxLIP p=0.7", "FSII", "Grad-ECLIP")]
    page = fplot.write_viewer(
        {k: methods[k] for k in keep if k in methods}, OUT / f"viewer{suffix}.html", k=8
    )
    print(f"wrote {page.relative_to(ROOT)}")
    chromium = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        chromium = None
    if chromium is None:
        print("no chromium/playwright: viewer screenshot not taken")
        return
    sample = generate_sample(SEED, n_objects=3, n_named=2)
    word = next(j for j, o in enumerate(sample.word_objects) if o == sample.named[0])
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 1760, "height": 740})
        tab.goto(page.resolve().as_uri())
        tab.wait_for_function("window.fixlipViewer !== undefined")
        tab.locator(".panel").nth(1).locator(".tok").nth(word).click()
        tab.mouse.move(0, 0)
        tab.screenshot(path=str(OUT / f"viewer{suffix}.png"))
        browser.close()
    print(f"wrote docs/figures/viewer{suffix}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", action="store_true", help="use a hand-made explanation")
    parser.add_argument("--budget", type=int, default=2**16, help="FIxLIP budget (real model)")
    args = parser.parse_args()

    from fixlip_captum.models import CHECKPOINT_PATH

    synthetic = args.synthetic or not CHECKPOINT_PATH.is_file()
    if synthetic:
        suffix = "_synthetic"
        iv = synthetic_explanation(7)
        iv196 = synthetic_explanation(14)
        methods = {
            "FIxLIP p=0.5": iv,
            "FIxLIP p=0.7": synthetic_explanation(7, p=0.7, seed=SEED),
            "first-order A": synthetic_first_order(iv, "A", 1),
        }
        timings = {}
    else:
        suffix = ""
        methods, timings = real_explanations(args.budget)
        iv = methods["FIxLIP p=0.5"]
        iv196 = None
        # the shipped model has 36 patches: show readability at 196 on a synthetic one
        _save(fplot.plot_joint(synthetic_explanation(14), k=12), "joint_196_synthetic.png")

    _save(fplot.plot_joint(iv, k=10), f"joint{suffix}.png")
    _save(fplot.plot_joint(iv, k=12, edge_kinds="all", joint_scale=True), f"joint_all{suffix}.png")
    if iv196 is not None:
        _save(fplot.plot_joint(iv196, k=12), f"joint_196{suffix}.png")
    _save(fplot.plot_conditional_grid(iv, ncols=4), f"conditional_grid{suffix}.png")
    _save(fplot.plot_si_graph(iv, n_interactions=20), f"si_graph{suffix}.png")
    _save(fplot.plot_upset(iv, n_interactions=12), f"upset{suffix}.png", dpi=80)
    _save(fplot.plot_sentence(iv), f"sentence{suffix}.png")
    _save(fplot.plot_waterfall(iv, k=10), f"waterfall{suffix}.png", dpi=80)
    _save(fplot.plot_force(iv, k=6), f"force{suffix}.png", dpi=80)
    _save(fplot.plot_comparison(methods), f"comparison{suffix}.png", dpi=90)
    _save(fplot.plot_cliques(iv, 8), f"cliques{suffix}.png")
    viewer_figure(methods, suffix)
    report = fplot.write_report(iv, OUT / f"report{suffix}.html", timings=timings)
    print(f"wrote {report.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
