"""The interactive viewer: its numbers are the explanation's, and in a real browser the
colours follow them (headless Debian chromium driven by playwright)."""

from __future__ import annotations

import base64
import io
import re
import shutil
import time

import numpy as np
import pytest
from PIL import Image

from fixlip_captum import load_interaction_values
from fixlip_captum.cli import main
from fixlip_captum.interaction_values import ExplanationContext, make_interaction_values
from fixlip_captum.plot import read_viewer_data, show, write_viewer
from fixlip_captum.plot._style import NEGATIVE, POSITIVE
from fixlip_captum.plot.viewer import render_viewer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MAX_ALPHA = 0.85  # opacity of a patch at |value| = the scale's limit (as in the figures)


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[k : k + 2], 16) for k in (1, 3, 5)], dtype=float)


# --------------------------------------------------------------------------------------------
# explanations of a scene by the shipped model (ground truth: which patches an object covers)


@pytest.fixture(scope="module")
def scene():
    from fixlip_captum import models

    if not models.CHECKPOINT_PATH.is_file():
        pytest.skip("the default model's weights are not in this checkout")
    from fixlip_captum.attr import FIxLIP
    from fixlip_captum.methods import get_method
    from fixlip_captum.scenes import generate_sample

    model, _, tokenizer = models.load_default()
    sample = generate_sample(7, n_objects=3, n_named=2)
    explainer = FIxLIP(model, tokenizer)
    kwargs = dict(budget=2**11, seed=0, pairs="crossmodal")
    iv = explainer.attribute_interactions(sample.image, sample.text, p=0.5, **kwargs)
    iv3 = explainer.attribute_interactions(sample.image, sample.text, p=0.3, **kwargs)
    grad = get_method("grad_eclip", model, tokenizer).attribute_interactions(
        sample.image, sample.text
    )
    return sample, {"FIxLIP p=0.5": iv, "FIxLIP p=0.3": iv3, "Grad-ECLIP": grad}


def _named_object(sample):
    """The first named object, its colour word, its most covered patch and a far empty one."""
    obj = sample.named[0]
    word = next(j for j, o in enumerate(sample.word_objects) if o == obj)
    grid = (6, 6)
    cover = sample.patch_coverage(obj, grid)
    patch = int(np.argmax(cover))
    empty = ~sample.patch_masks(grid).any(axis=0)
    rows, cols = np.divmod(np.arange(36), 6)
    dist = np.hypot(rows - patch // 6, cols - patch % 6)
    far = int(np.argmax(np.where(empty, dist, -1)))
    assert cover[patch] > 0.3 and empty[far]
    return obj, word, patch, far


def test_page_holds_the_explanations_numbers(scene):
    sample, explanations = scene
    page = render_viewer(explanations)
    data = read_viewer_data(page)
    assert [p["name"] for p in data["panels"]] == list(explanations)
    assert data["pair"]["tokens"] == sample.words and data["pair"]["grid"] == [6, 6]
    for panel, iv in zip(data["panels"], explanations.values(), strict=True):
        np.testing.assert_allclose(panel["first_order"], iv.first_order(), atol=1e-6, rtol=0)
        assert panel["settings"]["v(full)"] == pytest.approx(iv.context.v_full, abs=1e-6)
        assert panel["settings"]["v(empty)"] == pytest.approx(iv.context.v_empty, abs=1e-6)
        assert panel["settings"]["intercept e()"] == pytest.approx(iv[()], abs=1e-6)
        pairs = panel["pairs"]
        if iv.max_order < 2:
            assert pairs is None
            np.testing.assert_allclose(panel["main"], [iv[(i,)] for i in range(iv.n_players)])
            continue
        fitted = {t: iv[t] for t in iv.interaction_lookup if len(t) == 2}
        got = {t: pairs[t] for t in fitted}
        np.testing.assert_allclose(list(got.values()), list(fitted.values()), atol=1e-6, rtol=0)
        # every other pair (image-image, text-text: not fitted with pairs="crossmodal") is 0
        assert np.count_nonzero(np.triu(pairs, 1)) == np.count_nonzero(list(fitted.values()))
        np.testing.assert_array_equal(pairs, pairs.T)
    info = explanations["FIxLIP p=0.5"].estimation_info
    s = data["panels"][0]["settings"]
    assert s["m_I x m_T"] == f"{info['m_image']} x {info['m_text']}"
    assert (s["index"], s["p"], s["budget"], s["seed"]) == ("FBII", 0.5, info["budget"], 0)
    # the display image is embedded losslessly, and nothing is fetched from a network
    uri = data["pair"]["image"]
    assert uri.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as im:
        pixels = np.asarray(im.convert("RGB"))
    ctx_image = explanations["FIxLIP p=0.5"].context.image
    np.testing.assert_array_equal(pixels, np.round(ctx_image * 255).astype(np.uint8))
    assert set(re.findall(r"https?://[^\s\"'<>)]+", page)) == {"http://www.w3.org/2000/svg"}
    assert "<link" not in page and "<script src" not in page


def test_html_entry_points_and_errors(scene, tmp_path):
    _, explanations = scene
    iv = explanations["FIxLIP p=0.5"]
    path = iv.to_html(tmp_path / "sub" / "one.html", k=3)
    data = read_viewer_data(path.read_text(encoding="utf-8"))
    assert data["k"] == 3 and len(data["panels"]) == 1
    assert data["panels"][0]["name"] == "FBII p=0.5"
    assert not list(path.parent.glob(".*.tmp"))  # written through a temporary file
    frame = iv._repr_html_()
    assert frame.startswith("<iframe srcdoc=") and 'sandbox="allow-scripts"' in frame
    assert show(iv).html == render_viewer(iv)
    with pytest.raises(ValueError, match=r"\.html"):
        write_viewer(iv, tmp_path / "page.png")
    with pytest.raises(ValueError, match="k"):
        render_viewer(iv, k=-1)
    with pytest.raises(TypeError, match="mapping"):
        render_viewer({})
    other = make_interaction_values(
        [0.0, 1.0, 2.0],
        [(), (0,), (1,)],
        n_players=2,
        index="SV",
        max_order=1,
        context=ExplanationContext(n_image=1, n_text=1, grid=(1, 1)),
    )
    with pytest.raises(ValueError, match="same pair"):
        render_viewer({"a": iv, "b": other})
    no_grid = make_interaction_values([0.0], [()], n_players=2, index="SV", max_order=1)
    assert no_grid._repr_html_() is None
    with pytest.raises(ValueError, match="ExplanationContext"):
        render_viewer(no_grid)


def test_cli_view_writes_one_page_for_several_files(scene, tmp_path, capsys):
    sample, explanations = scene
    files = []
    for k, name in enumerate(("FIxLIP p=0.5", "FIxLIP p=0.3")):
        files.append(tmp_path / f"e{k}.json")
        explanations[name].save(files[-1])
    sample.image.save(tmp_path / "scene.png")
    out = tmp_path / "page.html"
    args = ["view", *map(str, files), "--image", str(tmp_path / "scene.png"), "--out", str(out)]
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().out
    data = read_viewer_data(out.read_text(encoding="utf-8"))
    assert [p["name"] for p in data["panels"]] == ["FBII p=0.5", "FWBII p=0.3"]
    loaded = load_interaction_values(files[1])
    np.testing.assert_allclose(data["panels"][1]["first_order"], loaded.first_order(), atol=1e-6)
    assert data["pair"]["image"].startswith("data:image/png")  # the 96 px scene, uncropped
    assert main(["view", str(files[0])]) == 0  # default: next to the file, no image
    assert read_viewer_data(files[0].with_suffix(".html").read_text())["pair"]["image"] is None
    # a wide photo is centre-cropped to the square grid: the middle third survives
    wide = np.zeros((90, 270, 3), dtype=np.uint8)
    wide[:, 90:180] = 255
    Image.fromarray(wide).save(tmp_path / "wide.png")
    assert main(["view", str(files[0]), "--image", str(tmp_path / "wide.png")]) == 0
    uri = read_viewer_data(files[0].with_suffix(".html").read_text())["pair"]["image"]
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as im:
        assert im.size == (90, 90) and np.asarray(im.convert("L")).min() > 250
    assert main(["view", str(tmp_path / "missing.json")]) == 2
    assert "No explanation file" in capsys.readouterr().err


def test_demo_writes_the_viewer_and_the_report_links_it(scene, tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--seed", "3", "--budget", "4096", "--pairs", "crossmodal", "--top", "6"]
    assert main([*args, "--out", str(out), "--no-progress"]) == 0
    assert "viewer.html" in capsys.readouterr().out
    data = read_viewer_data((out / "viewer.html").read_text(encoding="utf-8"))
    iv = load_interaction_values(out / "interactions.json")
    assert data["k"] == 6 and data["pair"]["image"].startswith("data:image/png")
    np.testing.assert_allclose(data["panels"][0]["first_order"], iv.first_order(), atol=1e-6)
    # `--report` passes the viewer's name to the report, which links it
    from fixlip_captum.plot import write_report

    report = write_report(
        scene[1]["FIxLIP p=0.5"], tmp_path / "r.html", conditional=False, viewer_href="v.html"
    )
    assert '<a href="v.html">' in report.read_text(encoding="utf-8")


def _large_explanation(seed: int = 0):
    """196 patches (14 x 14) and 30 tokens, every pair present, with a 224 px photo-like image."""
    rng = np.random.default_rng(seed)
    n_image, n_text = 196, 30
    n = n_image + n_text
    terms = [(), *((i,) for i in range(n)), *zip(*np.triu_indices(n, k=1), strict=True)]
    values = rng.normal(0.0, 0.05, len(terms))
    yy, xx = np.mgrid[0:224, 0:224] / 224
    image = np.stack([0.5 + 0.3 * np.sin(9 * xx), 0.4 + 0.3 * yy, 0.5 + 0.2 * np.cos(7 * yy)], -1)
    image = np.clip(image + rng.normal(0, 0.04, image.shape), 0, 1)
    ctx = ExplanationContext(
        n_image=n_image,
        n_text=n_text,
        grid=(14, 14),
        token_labels=[f"word{j}" for j in range(n_text)],
        v_empty=0.1,
        v_full=2.0,
        image=image,
    )
    return make_interaction_values(
        values, [tuple(int(i) for i in t) for t in terms], n_players=n, index="FBII",
        max_order=2, p=0.5, context=ctx,
    )  # fmt: skip


def test_file_stays_small_at_196_patches_and_30_tokens(tmp_path):
    iv = _large_explanation()
    path = write_viewer(iv, tmp_path / "large.html")
    size = path.stat().st_size
    assert size < 2_000_000, f"{size} bytes"
    data = read_viewer_data(path.read_text(encoding="utf-8"))
    pairs = data["panels"][0]["pairs"]
    assert pairs[3, 200] == iv[(3, 200)] and pairs[200, 3] == iv[(3, 200)]


# --------------------------------------------------------------------------------------------
# in a real browser


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def open_page(browser):
    """Open a file in a fresh page; afterwards, assert the page logged no error."""
    pages, errors = [], []

    def _open(path):
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(path.resolve().as_uri())
        page.wait_for_function("window.fixlipViewer !== undefined")
        pages.append(page)
        return page

    yield _open
    for page in pages:
        page.close()
    assert errors == []


def _patch_value(page, panel: int, player: int) -> float:
    """The value a patch's colour shows, in units of the scale's limit, read from the canvas."""
    r, g, b, a = page.evaluate(
        """([panel, player, rows, cols]) => {
            const c = document.querySelectorAll('.panel')[panel].querySelector('canvas.heat');
            const x = Math.floor(((player % cols) + 0.5) * c.width / cols);
            const y = Math.floor((Math.floor(player / cols) + 0.5) * c.height / rows);
            return Array.from(c.getContext('2d').getImageData(x, y, 1, 1).data);
        }""",
        [panel, player, 6, 6],
    )
    if a == 0:
        return 0.0
    colour = _rgb(POSITIVE) if r > b else _rgb(NEGATIVE)
    # pure red or blue, see-through (canvases store premultiplied colour: faint cells round)
    assert np.abs(np.array([r, g, b]) - colour).max() <= 2 + 300 / a
    return (1 if r > b else -1) * a / 255 / MAX_ALPHA


def _token_values(page, panel: int) -> np.ndarray:
    """The values the token boxes' background colours show (units of the scale's limit)."""
    colours = page.evaluate(
        """(panel) => Array.from(document.querySelectorAll('.panel')[panel]
                .querySelectorAll('.tok')).map(b => getComputedStyle(b).backgroundColor)""",
        panel,
    )
    pos, neg = _rgb(POSITIVE), _rgb(NEGATIVE)
    out = []
    for c in colours:
        r, g, b = (float(v) for v in re.findall(r"[\d.]+", c)[:3])
        if r >= b:  # white -> red: g falls from 255 to POSITIVE's g
            out.append((255 - g) / (255 - pos[1]))
        else:  # white -> blue: r falls from 255 to NEGATIVE's r
            out.append(-(255 - r) / (255 - neg[0]))
    return np.array(out)


def test_clicking_a_word_and_a_patch_colours_by_their_interactions(scene, tmp_path, open_page):
    sample, explanations = scene
    iv = explanations["FIxLIP p=0.5"]
    n_image = iv.context.n_image
    _, word, patch, far = _named_object(sample)
    page_path = write_viewer(iv, tmp_path / "one.html")
    data = read_viewer_data(page_path.read_text(encoding="utf-8"))
    pairs = data["panels"][0]["pairs"]
    vmax = np.abs(pairs).max()
    page = open_page(page_path)

    # first-order view at load: patch colours are phi / max|phi|
    phi = data["panels"][0]["first_order"]
    shown = [_patch_value(page, 0, i) for i in (patch, far)]
    np.testing.assert_allclose(shown, phi[[patch, far]] / np.abs(phi).max(), atol=0.01)

    # click the colour word of the named object: patches show that word's interactions
    page.locator(".tok").nth(word).click()
    page.mouse.move(0, 0)  # off the tokens: the click, not the hover, decides
    row = pairs[n_image + word]
    assert row[patch] > row[far]  # the model binds the word to the object it names
    got = [_patch_value(page, 0, i) for i in (patch, far)]
    assert got[0] > got[1]
    np.testing.assert_allclose(got, row[[patch, far]] / vmax, atol=0.01)
    assert page.evaluate("window.fixlipViewer.state.selected") == n_image + word

    # click the object's patch: the tokens show that patch's interactions
    box = page.locator(".panel canvas.marks").first.bounding_box()
    page.mouse.click(
        box["x"] + (patch % 6 + 0.5) * box["width"] / 6,
        box["y"] + (patch // 6 + 0.5) * box["height"] / 6,
    )
    assert page.evaluate("window.fixlipViewer.state.selected") == patch
    tokens = _token_values(page, 0)
    expected = pairs[patch, n_image:] / vmax
    np.testing.assert_allclose(tokens, expected, atol=0.01)
    big = np.abs(expected[:, None] - expected[None, :]) > 0.02
    assert np.array_equal(
        (tokens[:, None] > tokens[None, :])[big], (expected[:, None] > expected[None, :])[big]
    )
    assert np.argmax(tokens) == np.argmax(expected)


def test_keyboard_topk_and_side_by_side(scene, tmp_path, open_page):
    _, explanations = scene
    n_image = 36
    page_path = write_viewer(explanations, tmp_path / "compare.html", k=4)
    data = read_viewer_data(page_path.read_text(encoding="utf-8"))
    page = open_page(page_path)
    assert page.locator(".panel").count() == 3

    # the k strongest image-text pairs are drawn as lines, and the slider changes k
    def drawn(panel=0):
        return page.evaluate(
            "(p) => Array.from(document.querySelectorAll('.panel')[p]"
            ".querySelectorAll('svg.edges line')).map(l => l.getAttribute('data-edge'))",
            panel,
        )

    def strongest(k, panel=0):
        pairs = data["panels"][panel]["pairs"][:n_image, n_image:]
        order = np.argsort(-np.abs(pairs), axis=None, kind="stable")[:k]
        return {
            f"{i}-{j + n_image}" for i, j in zip(*np.unravel_index(order, pairs.shape), strict=True)
        }

    assert set(drawn()) == strongest(4)
    page.locator("#fixlip-k").fill("7")
    assert set(drawn()) == strongest(7) and len(drawn(1)) == 7 and drawn(2) == []

    # keyboard: Tab to the image, arrows move the cursor, Enter selects, Esc goes back
    page.locator(".panel canvas.marks").first.focus()
    for key in ("ArrowRight", "ArrowRight", "ArrowDown", "Enter"):
        page.keyboard.press(key)
    state = page.evaluate("window.fixlipViewer.state")
    assert (state["selected"], state["view"]) == (6 + 2, "cond")
    # one shared scale: every panel with pair terms shows the same patch row on one limit
    vmax = max(np.abs(p["pairs"]).max() for p in data["panels"][:2])
    for panel in (0, 1):
        np.testing.assert_allclose(
            _token_values(page, panel),
            data["panels"][panel]["pairs"][8, n_image:] / vmax,
            atol=0.01,
        )
    page.keyboard.press("Escape")
    assert page.evaluate("window.fixlipViewer.state.view") == "first"
    page.keyboard.press("c")
    assert page.evaluate("window.fixlipViewer.state.view") == "cond"
    # a token has keyboard focus like a button: focus previews, Enter pins it
    page.locator(".panel").nth(1).locator(".tok").nth(4).focus()
    page.keyboard.press("Enter")
    assert page.evaluate("window.fixlipViewer.state.selected") == n_image + 4
    # the first-order method's panel keeps its first-order values, on the shared scale
    phi_max = max(np.abs(p["first_order"]).max() for p in data["panels"])
    np.testing.assert_allclose(
        _token_values(page, 2), data["panels"][2]["first_order"][n_image:] / phi_max, atol=0.01
    )


def test_notebook_frame_runs_the_viewer(scene, browser):
    _, explanations = scene
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_content(explanations["FIxLIP p=0.5"]._repr_html_())
    frame = page.frames[1]
    frame.wait_for_selector(".tok")
    assert frame.locator(".tok").count() == len(scene[0].words)
    page.close()
    assert errors == []


def test_hover_render_time_at_196_patches_and_30_tokens(tmp_path, open_page):
    """Measured in the browser and printed (absolute times are not asserted: the machine is
    shared); the figure for the docs comes from benchmarks/viewer_speed.py."""
    path = write_viewer(_large_explanation(), tmp_path / "large.html", k=20)
    page = open_page(path)
    tokens = page.locator(".tok")
    start = time.perf_counter()
    for j in range(30):
        tokens.nth(j).hover()
    wall = (time.perf_counter() - start) / 30
    timing = page.evaluate("window.fixlipViewer.timing")
    assert timing["count"] >= 30
    assert page.evaluate("window.fixlipViewer.state.hover") == 196 + 29
    assert page.locator("svg.edges line").count() == 20
    print(f"\nrender per hover: mean {timing['total'] / timing['count']:.2f} ms, "
          f"max {timing['max']:.2f} ms; hover round trip {1000 * wall:.1f} ms")  # fmt: skip
