"""The ``fixlip`` command on the shipped model: outputs, values, and errors a user can act on."""

from __future__ import annotations

import json

import pytest
import torch
from shapiq import InteractionValues

from fixlip_captum import load_interaction_values
from fixlip_captum.cli import main
from fixlip_captum.models import load_default
from fixlip_captum.scenes import generate_sample


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory):
    sample = generate_sample(123, n_objects=2, n_named=2)
    path = tmp_path_factory.mktemp("img") / "scene.png"
    sample.image.save(path)
    return path, sample


def test_explain_writes_files_and_reports_the_models_own_score(scene_file, tmp_path, capsys):
    path, sample = scene_file
    out = tmp_path / "out"
    code = main(
        [
            "explain", "--image", str(path), "--text", sample.text, "--budget", "4096",
            "--pairs", "crossmodal", "--out", str(out), "--no-progress", "--top", "5",
        ]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "v(full)" in printed and "Top 5 interactions" in printed
    assert (out / "explanation.png").stat().st_size > 10_000
    iv = load_interaction_values(out / "interactions.json")
    plain = InteractionValues.load(out / "interactions.json")  # shapiq's own loader
    assert plain[()] == pytest.approx(iv[()]) and plain.index == iv.index == "FBII"
    # v(full) is the model's own logit for the unmasked pair.
    model, preprocess, tokenizer = load_default()
    with torch.no_grad():
        img = model.encode_image(preprocess(sample.image)[None], normalize=True)
        txt = model.encode_text(tokenizer([sample.text]), normalize=True)
        logit = float(model.logit_scale.exp() * (img @ txt.T))
    assert iv.context.v_full == pytest.approx(logit, abs=1e-4)
    assert f"{logit:.4f}" in printed
    data = json.loads((out / "interactions.json").read_text())
    assert data["parameters"]["fixlip_estimation_info"]["pairs"] == "crossmodal"
    assert iv.context.token_labels == sample.words


def test_demo_and_report(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--seed", "3", "--out", str(out), "--no-progress", "--report"])
    assert code == 0
    assert (out / "scene.png").exists() and (out / "report.html").exists()
    html = (out / "report.html").read_text()
    assert "data:image/png;base64" in html
    assert "explanation.png" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--image", "/no/such/file.png", "--text", "a red circle"], "Image file not found"),
        (["--text", "a red circle", "--model", "clip-please"], "not understood"),
        (["--text", "a red circle", "--model", "open_clip:ViT-B-32"], "needs an architecture"),
        (
            ["--text", "a red circle", "--model", "open_clip:ViT-B-32:/nowhere/weights.pt"],
            "not available offline",
        ),
        (["--text", "   "], "caption is empty"),
        (["--text", "a red circle", "--p", "1.5"], "strictly between 0 and 1"),
        (["--text", "a red circle", "--budget", "50"], "budget of at least"),
    ],
)
def test_errors_say_what_to_do(scene_file, tmp_path, capsys, args, message):
    path, _ = scene_file
    if "--image" not in args:
        args = ["--image", str(path), *args]
    code = main(["explain", *args, "--out", str(tmp_path), "--no-progress"])
    assert code == 2
    assert message in capsys.readouterr().err


def test_unreadable_image(tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    code = main(["explain", "--image", str(bad), "--text", "a red circle", "--out", str(tmp_path)])
    assert code == 2
    assert "Cannot read" in capsys.readouterr().err
