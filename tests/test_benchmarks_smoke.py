"""Smoke tests of the benchmark scripts on a reduced configuration (~1-2 min on 1 thread).

They run the real scripts end to end (shipped default model, registry methods, one game)
and check the files they write and the ranges of what is in them. The full ``--quick`` run
(< 5 min) is too slow for the test suite on 2 shared CPU cores; these reduced configs
exercise the same code paths.
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

models = pytest.importorskip("fixlip_captum.models")
pytestmark = pytest.mark.skipif(
    not models.CHECKPOINT_PATH.is_file(), reason="the default model's weights are not shipped"
)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_faithfulness_benchmark_reduced(tmp_path):
    from benchmarks import faithfulness

    methods = ["fixlip", "grad_eclip", "shapley_values"]
    argv = ["--quick", "--n-scenes", "1", "--n-faithfulness", "40", "--threads", "1"]
    argv += ["--methods", ",".join(methods), "--out", str(tmp_path)]
    assert faithfulness.main(argv) == 0
    for name in ("faithfulness_quick.md", "faithfulness_quick.csv"):
        assert (tmp_path / name).stat().st_size > 0
    for suffix in ("curves", "pgr", "by_p"):
        assert (tmp_path / f"faithfulness_quick_{suffix}.png").stat().st_size > 1000
    rows = _rows(tmp_path / "faithfulness_quick.csv")
    assert [r["method"] for r in rows] == methods
    for r in rows:
        assert r["error"] == ""
        assert 0.0 <= float(r["pgr"]) <= 1.0
        assert math.isfinite(float(r["aid_raw"]))
        if float(r["span"]) >= faithfulness.MIN_SPAN:
            assert float(r["aid"]) == pytest.approx(
                float(r["insertion"]) - float(r["deletion"]), abs=1e-5
            )
            assert float(r["aid_raw"]) == pytest.approx(
                float(r["aid"]) * float(r["span"]), rel=1e-4
            )
        else:
            assert r.get("aid", "") == ""
        for key in ("p0.3", "p0.5", "p0.7", "shapley"):
            assert -1.0 <= float(r[f"spearman_{key}"]) <= 1.0
    orders = {r["method"]: r["order"] for r in rows}
    assert orders == {"fixlip": "2", "grad_eclip": "1", "shapley_values": "1"}
    text = (tmp_path / "faithfulness_quick.md").read_text()
    assert "FIxLIP (p=0.7) | 0.83 | 0.81 | 0.83 | 0.85" in text  # the paper anchor


def test_runtime_benchmark_reduced(tmp_path):
    from benchmarks import runtime

    argv = ["--min-log2", "10", "--max-log2", "10", "--methods", "agnostic,crossmodal"]
    argv += ["--threads", "1", "--out", str(tmp_path)]
    assert runtime.main(argv) == 0
    rows = {r["method"]: r for r in _rows(tmp_path / "runtime.csv")}
    agnostic = rows["agnostic"]
    assert agnostic["status"] == "ok"
    # one masked image per evaluated coalition (distinct image parts are encoded once)
    assert 0 < int(agnostic["image_forwards"]) <= 2**10 + 2
    # the same batches replayed bare: the explanation contains them, so it takes longer
    assert 0 < float(agnostic["forward_seconds"]) <= float(agnostic["seconds"])
    assert float(agnostic["bare_seconds"]) > 0 and float(agnostic["overhead"]) > 0.5
    assert rows["crossmodal"]["status"] in ("ok", "not identifiable")
    assert (tmp_path / "runtime.md").read_text().startswith("# Runtime")


def test_sample_efficiency_benchmark_reduced(tmp_path):
    from benchmarks import sample_efficiency

    out = tmp_path / "sample_efficiency.md"
    argv = ["--pairs", "1", "--seeds", "1", "--log2", "11,16", "--full-pairs", "1"]
    argv += ["--full-log2", "14", "--full-reference", "15", "--full-seeds", "1"]
    sample_efficiency.main([*argv, "--out", str(out)])
    lines = out.read_text().splitlines()
    rows = [line.split(" | ") for line in lines if line.startswith("| scene")]
    assert len(rows) == 3 * 2 + 3  # p in {0.3, 0.5, 0.7}: two small budgets, one full
    for row in rows:
        previous, new = float(row[3]), float(row[5])
        assert math.isfinite(new) and row[6] == "0"  # ours: identifiable at every budget
        # 0.1's i.i.d. masks may not identify a full pair at 2^14 (duplicates): a failure.
        assert math.isfinite(previous) == (row[4] == "0")
        if row[2] == "2^16":  # 4096 x 16: the whole 12 + 4 game, both estimators exact
            assert previous < 1e-20 and new < 1e-20
        else:
            assert new > 0
