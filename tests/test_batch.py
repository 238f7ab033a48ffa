"""Dataset runs (``explain_dataset`` / ``fixlip explain-dataset``): sources, engines, faults.

Every comparison is made in this run: the local engine against the Ray engine with two
workers, interrupted runs against an uninterrupted one, and ``load_results`` against the
in-process ``FIxLIP.attribute_interactions`` with the same pair seed. All runs use one torch
thread per worker, so the values are bit-identical (float32 reductions depend on the number
of threads; see docs/how-to/batch.md).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from PIL import Image

from fixlip_captum import FIxLIP, explain_dataset, load_interaction_values, load_results
from fixlip_captum.batch import pair_seed
from fixlip_captum.batch.explain import json_path
from fixlip_captum.batch.sources import read_source
from fixlip_captum.cli import main
from fixlip_captum.models import TEST_SEED, load_default
from fixlip_captum.scenes import generate_sample

ROOT = Path(__file__).resolve().parents[1]
# Crossmodal pairs only, so that a small budget identifies every term (tests stay fast).
SETTINGS = {"budget": 2**12, "pairs": "crossmodal", "show_progress": False}
N_GOOD = 8
TOO_LONG = " ".join(["a red circle and a blue star"] * 8)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """8 generated scenes and 2 bad rows, as a JSONL manifest and as an imagefolder."""
    root = tmp_path_factory.mktemp("dataset")
    images = root / "images"
    images.mkdir()
    rows = []
    for i in range(N_GOOD):
        sample = generate_sample(TEST_SEED + 5_000 + i, n_objects=2, n_named=1 + i % 2)
        sample.image.save(images / f"scene{i}.png")
        rows.append({"id": f"scene-{i}", "file": f"scene{i}.png", "text": sample.text})
    rows.append({"id": "missing-image", "file": "absent.png", "text": "a red circle"})
    rows.append({"id": "too-long", "file": "scene0.png", "text": TOO_LONG})
    manifest = root / "manifest.jsonl"
    manifest.write_text(
        "".join(
            json.dumps({"id": r["id"], "image": f"images/{r['file']}", "text": r["text"]}) + "\n"
            for r in rows
        )
    )
    lines = ["file_name,text,id"] + [f"{r['file']},{r['text']},{r['id']}" for r in rows]
    (images / "metadata.csv").write_text("\n".join(lines) + "\n")
    return {"root": root, "manifest": manifest, "imagefolder": images, "rows": rows}


@pytest.fixture(scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def local(data, one_thread, tmp_path_factory):
    """The uninterrupted local run every other run is compared with."""
    out = tmp_path_factory.mktemp("local")
    summary = explain_dataset(data["manifest"], out, json=True, part_size=3, **SETTINGS)
    return {"out": out, "summary": summary, "results": load_results(out)}


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _comparable(table: pa.Table, drop: tuple[str, ...] = ()) -> dict:
    """Rows by id, without the wall time (and any other columns named in ``drop``)."""
    keep = [c for c in table.column_names if c not in ("seconds", *drop)]
    rows = table.select(keep).to_pylist()
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "an id appears twice"
    return {r["id"]: r for r in rows}


def test_local_run_explains_good_rows_and_records_bad_ones(local, data):
    summary, results = local["summary"], local["results"]
    assert (summary.done, summary.failed, summary.skipped) == (N_GOOD, 2, 0)
    assert summary.pairs_per_minute > 0
    assert sorted(results) == [f"scene-{i}" for i in range(N_GOOD)]
    assert results.table.num_rows == N_GOOD + 2
    assert results.table.column("position").to_pylist() == list(range(N_GOOD + 2))
    assert "image file not found" in results.errors["missing-image"]
    assert str(data["root"] / "images" / "absent.png") in results.errors["missing-image"]
    assert "longer than the model's context" in results.errors["too-long"]
    bad = results.row("too-long")
    assert bad["values"] is None and bad["v_full"] is None and bad["text"] == TOO_LONG
    with pytest.raises(KeyError, match="failed: ValueError"):
        results["too-long"]
    # Readers of Parquet datasets see the folder as one table.
    pd = pytest.importorskip("pandas")
    frame = pd.read_parquet(local["out"])
    assert sorted(frame["id"]) == sorted(r["id"] for r in data["rows"])


def test_load_results_equals_the_in_process_api(local, data, one_thread):
    model, _, tokenizer = load_default()
    explainer = FIxLIP(model, tokenizer)
    results = local["results"]
    for i in (0, 5):
        pair_id = f"scene-{i}"
        row = results.row(pair_id)
        image = Image.open(data["root"] / "images" / f"scene{i}.png").convert("RGB")
        ref = explainer.attribute_interactions(
            image,
            row["text"],
            budget=SETTINGS["budget"],
            pairs=SETTINGS["pairs"],
            seed=pair_seed(0, pair_id),
        )
        for iv in (results[pair_id], load_interaction_values(json_path(local["out"], pair_id))):
            assert iv.interaction_lookup.keys() == ref.interaction_lookup.keys()
            got = np.array([iv[t] for t in ref.interaction_lookup])
            want = np.array([ref[t] for t in ref.interaction_lookup])
            np.testing.assert_array_equal(got, want)
            assert (iv.index, iv.p, iv.max_order) == (ref.index, ref.p, ref.max_order)
            assert iv.estimation_budget == ref.estimation_budget
            assert iv.context.v_full == ref.context.v_full
            assert iv.context.v_empty == ref.context.v_empty
            assert iv.context.token_labels == ref.context.token_labels
            assert iv.context.grid == ref.context.grid
        assert row["pair_seed"] == iv.estimation_info["seed"] == pair_seed(0, pair_id)


def test_imagefolder_and_manifest_give_the_same_pairs(data):
    a = read_source(data["manifest"])
    b = read_source(data["imagefolder"])
    assert a.ids == b.ids and a.texts == b.texts
    for k in range(len(a)):
        assert a.payload(k).image == b.payload(k).image  # the same absolute paths


def _descendants(pid: int) -> set[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
                )
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {c for c, p in parents.items() if p in frontier} - found
        found |= frontier
    return found


def _ray_worker_pids() -> list[int]:
    pids = []
    for pid in _descendants(os.getpid()):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if cmd.startswith(b"ray::_RayWorker"):
            pids.append(pid)
    return pids


def _wait_for_parts(out: Path, n: int, timeout: float, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(list(out.glob("part-*.parquet"))) >= n:
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended early: {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError(f"no {n} parts in {out} after {timeout} s")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the Ray workers through /proc")
def test_ray_two_workers_equal_local_even_when_a_worker_dies(ray_session, local, data, tmp_path):
    """Ray, 2 workers, on the imagefolder; one worker is killed mid-run: the run completes
    with every id once, value for value equal to the local run on the manifest."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["summary"] = explain_dataset(
                data["imagefolder"], tmp_path, engine="ray", workers=2, part_size=1, **SETTINGS
            )
        except BaseException as exc:  # reported below
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    _wait_for_parts(tmp_path, 1, timeout=300)
    workers = _ray_worker_pids()
    parts_at_kill = len(list(tmp_path.glob("part-*.parquet")))
    assert len(workers) == 2, workers
    os.kill(workers[0], signal.SIGKILL)
    thread.join(timeout=300)
    assert "error" not in outcome, outcome.get("error")
    assert parts_at_kill < N_GOOD + 2, "the worker was killed after the run"
    assert workers[0] not in _ray_worker_pids()
    assert (outcome["summary"].done, outcome["summary"].failed) == (N_GOOD, 2)
    # ``image`` is the reference as the source writes it (relative to its own folder).
    got = _comparable(load_results(tmp_path).table, drop=("image",))
    assert got == _comparable(local["results"].table, drop=("image",))


def _cli(data, out: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    args = [sys.executable, "-m", "fixlip_captum", "explain-dataset", str(data["manifest"])]
    args += ["--out", str(out), "--budget", str(SETTINGS["budget"]), "--pairs", "crossmodal"]
    args += ["--part-size", "1", "--no-progress", *extra]
    return subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_local_run_interrupted_by_sigint_and_sigkill_then_rerun(local, data, one_thread, tmp_path):
    first = _cli(data, tmp_path)
    _wait_for_parts(tmp_path, 1, timeout=300, proc=first)
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 130, err
    assert "run the same command to continue" in err
    after_sigint = len(list(tmp_path.glob("part-*.parquet")))
    assert 1 <= after_sigint < N_GOOD + 2

    second = _cli(data, tmp_path)
    _wait_for_parts(tmp_path, after_sigint + 1, timeout=300, proc=second)
    second.kill()
    second.communicate(timeout=60)
    partial = load_results(tmp_path)  # every finished part reads; nothing half-written
    assert partial.table.num_rows < N_GOOD + 2

    # The rerun (here in-process, which spares a third interpreter start-up) continues it.
    summary = explain_dataset(data["manifest"], tmp_path, part_size=1, **SETTINGS)
    assert summary.skipped == partial.table.num_rows
    assert summary.skipped + summary.done + summary.failed == N_GOOD + 2
    assert _comparable(load_results(tmp_path).table) == _comparable(local["results"].table)


def test_shards_and_limit_give_the_same_rows(local, data, one_thread, tmp_path):
    for shard in ("1/2", "0/2"):
        explain_dataset(data["manifest"], tmp_path, shard=shard, limit=4, **SETTINGS)
    got = _comparable(load_results(tmp_path).table)
    want = _comparable(local["results"].table)
    assert got == {k: want[k] for k in ("scene-0", "scene-1", "scene-2", "scene-3")}


def test_rerun_with_other_settings_is_refused(local, data):
    with pytest.raises(ValueError, match=r"other settings .*budget.*--overwrite"):
        explain_dataset(data["manifest"], local["out"], budget=2**13, pairs="crossmodal")


def test_cli_exit_status_and_bad_images(tmp_path, capsys):
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    Image.new("RGB", (96, 96)).save(tmp_path / "fine.png")
    rows = [
        {"image": "broken.png", "text": "a red circle"},
        {"image": "fine.png", "text": "   "},
    ]
    manifest = tmp_path / "bad.csv"
    manifest.write_text("image,text\n" + "".join(f"{r['image']},{r['text']}\n" for r in rows))
    out = tmp_path / "out"
    assert main(["explain-dataset", str(manifest), "--out", str(out), "--no-progress"]) == 1
    printed = capsys.readouterr().out
    assert "0 done, 0 skipped" in printed and "2 failed" in printed
    errors = load_results(out).errors
    assert "cannot read" in errors["0"] and "broken.png" in errors["0"]
    assert "caption is empty" in errors["1"]
    # Nothing left to do: not a failure.
    assert main(["explain-dataset", str(manifest), "--out", str(out), "--no-progress"]) == 0
    assert main(["explain-dataset", str(manifest), "--out", str(out), "--shard", "2/2"]) == 2
    assert "0 <= I < N" in capsys.readouterr().err


def test_sources_refuse_duplicate_ids_and_missing_columns(tmp_path):
    (tmp_path / "dup.jsonl").write_text('{"id": "a", "image": "x.png", "text": "t"}\n' * 2)
    with pytest.raises(ValueError, match="ids must be unique"):
        read_source(tmp_path / "dup.jsonl")
    (tmp_path / "cols.csv").write_text("picture,text\nx.png,t\n")
    with pytest.raises(ValueError, match=r"no column 'image'.*image_column"):
        read_source(tmp_path / "cols.csv")
    assert read_source(tmp_path / "cols.csv", image_column="picture").ids == ["0"]
    with pytest.raises(ValueError, match=r"metadata\.jsonl or metadata\.csv"):
        read_source(tmp_path)


def test_datasets_dataset_source(local, data, one_thread, tmp_path):
    datasets = pytest.importorskip("datasets")
    good = data["rows"][:2]
    ds = datasets.Dataset.from_dict(
        {
            "picture": [Image.open(data["root"] / "images" / r["file"]) for r in good],
            "caption": [r["text"] for r in good],
            "id": [r["id"] for r in good],
        }
    )
    summary = explain_dataset(
        ds, tmp_path, image_column="picture", text_column="caption", **SETTINGS
    )
    assert summary.done == 2
    got = _comparable(load_results(tmp_path).table, drop=("image",))
    want = _comparable(local["results"].table, drop=("image",))
    assert got == {r["id"]: want[r["id"]] for r in good}
    assert load_results(tmp_path).row("scene-1")["image"] == "dataset[1]"
