"""The GPU check script (benchmarks/gpu) in --smoke mode: tiny models, CPU, few pairs.

One in-process run covers every code path of the GPU run except the CUDA-only checks,
which must be reported as skipped with the reason. Nothing absolute is timed here.
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def smoke_out(tmp_path_factory):
    from benchmarks.gpu import run

    out = tmp_path_factory.mktemp("gpu")
    assert run.main(["--smoke", "--out", str(out)]) == 0
    return out


def test_smoke_checks_pass_and_cuda_only_are_skipped(smoke_out):
    from benchmarks.gpu.models import SPECS
    from fixlip_captum.adapters.registry import FAMILIES

    rows = _rows(smoke_out / "gpu_checks.csv")
    assert not [r for r in rows if r["status"] in ("FAIL", "error")]
    skipped = [r for r in rows if r["status"] == "skipped"]
    assert skipped and all("CUDA only" in r["detail"] for r in skipped)
    assert {r["section"] for r in skipped} == {"oom", "autocast"}
    assert all(r["name"].startswith("float16") for r in skipped if r["section"] == "autocast")
    # every registered family ran the fp32, bf16 and model-unchanged checks
    by_model = {s.name: s.family for s in SPECS}
    ran = {by_model[r["model"]] for r in rows if r["model"] in by_model and r["status"] == "pass"}
    assert ran == {f.name for f in FAMILIES}
    names = {r["name"] for r in rows if r["status"] == "pass"}
    assert {"fp32 logits (mean)", "bfloat16 cosine", "model unchanged"} <= names
    solver = [r for r in rows if r["section"] == "solver"]
    assert solver and all(float(r["measured"]) <= 1e-6 for r in solver)
    md = (smoke_out / "gpu.md").read_text()
    assert "PLACEHOLDER" in md and "## 3. The paper's timing figure (A100)" in md


def test_smoke_speed_rows(smoke_out):
    all_rows = _rows(smoke_out / "gpu_speed.csv")
    assert len(all_rows) == 9 and all(r["status"] == "ok" for r in all_rows)
    assert len({r["model"] for r in all_rows if r["variant"] == "2^11 pairs"}) == 4
    rows = {r["variant"]: r for r in all_rows}
    for r in all_rows:
        assert int(r["pairs"]) == int(r["m_image"]) * int(r["m_text"])
        assert int(r["terms"]) == 1 + 19 + 19 * 18 // 2  # 16 patches + 3 tokens, all pairs
        assert float(r["forward_s"]) > 0 and float(r["bare_s"]) > 0
        assert math.isfinite(float(r["ratio"])) and float(r["ratio"]) > 0
    # full order 2 at twice the identifiable minimum: 137 image and 7 text features
    order2 = rows["full order 2 at 2x minimum"]
    assert (int(order2["m_image"]), int(order2["m_text"])) == (274, 8)
    mean = [r for r in rows.values() if r["masking"] == "mean"]
    assert all(float(r["masking_s"]) > 0 for r in mean)
    assert float(rows["drop masking"]["masking_s"]) == 0  # drop builds no pixel keep-mask
    assert rows["autocast bf16"]["dtype"] == "bfloat16"
    halving = rows["batch from OOM halving"]
    assert int(halving["batch_start"]) == int(halving["m_image"])  # all masks in one batch


def test_solver_hook_follows_the_public_option():
    from benchmarks.gpu.checks import solver_kwargs, solver_options

    def without(game, n_image, n_text, budget=None, *, seed=None):
        """The estimator as on main before #15."""

    def with_option(game, n_image, n_text, budget=None, *, seed=None, solver="auto"):
        """The estimator once the iterative solver is public."""

    assert solver_options(without) == (None,) and solver_kwargs(None) == {}
    assert solver_options(with_option) == ("direct", "iterative")
    assert solver_kwargs("iterative") == {"solver": "iterative"}


def test_model_state_detects_changes():
    from benchmarks.gpu.checks import ModelState

    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Dropout(0.1)).eval()
    state = ModelState.of(model)
    assert state.differences(model) == []
    model[1].train()
    assert state.differences(model) == ["training flags changed"]
    model.eval()
    with torch.no_grad():
        model[0].weight[0, 0] += 1e-6
    assert "1 tensors changed" in state.differences(model)[0]


def test_synthetic_game_same_values_for_same_masks():
    from benchmarks.gpu.checks import SyntheticGame, fixed_coalitions

    game = SyntheticGame(5, 3)
    ic, tc = fixed_coalitions(5, 3, 4, 2)
    v = game(ic, tc)
    a, b = ic[1].double(), tc[1].double()
    expected = (
        a @ game.u
        + a @ game.a @ a
        + b @ game.s
        + b @ game.b @ b
        + a @ game.c @ b
        + 0.3 * a[0] * a[1] * b[0]
    )
    assert v.shape == (4, 2) and v.dtype == torch.float64
    assert float(v[1, 1]) == pytest.approx(float(expected), rel=1e-12)


def test_gpu_run_refuses_cuda_without_a_gpu(monkeypatch):
    from benchmarks.gpu import run

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit):
        run.main(["--device", "cuda"])
