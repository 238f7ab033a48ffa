"""Issue #19 through the ``fixlip`` command: every argument is checked before the model is
loaded and before anything is written (one table row per bad argument: exit status 2, the
key words of the message, no model loaded, nothing left behind); Ctrl-C is one line and
exit 130; SIGINT and SIGKILL at several points of ``fixlip explain`` leave all of a run's
outputs or none, and a rerun writes them all.

Rows of #19 owned by other helpers and not yet on main: the CLI side of ``budget=2**40``
(the maximum meaningful budget) comes with the sampling helper's settings check.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import torch

import fixlip_captum.loading
from fixlip_captum import load_interaction_values
from fixlip_captum.atomic_write import OutputSet
from fixlip_captum.cli import build_parser, main
from fixlip_captum.scenes import generate_sample

torch.set_num_threads(1)

OUTPUTS = ["explanation.png", "interactions.json", "report.html"]
FAST = ["--budget", "2^11", "--pairs", "crossmodal", "--no-progress", "--top", "3"]


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory):
    sample = generate_sample(7, n_objects=2, n_named=2)
    path = tmp_path_factory.mktemp("img") / "scene.png"
    sample.image.save(path)
    return path, sample


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if a command loads a model."""

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(fixlip_captum.loading, "load_model", refuse)


def _cuda_row():
    if torch.cuda.is_available():
        return ["--device", f"cuda:{torch.cuda.device_count()}"], ["CUDA device(s)"]
    return ["--device", "cuda"], ["no CUDA GPU", "--device cpu"]


def _readonly_dir(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


BAD_ARGS = {
    # name: (arguments after the image and caption, key words of the message)
    "--top -3": (["--top", "-3"], ["--top", "at least 1"]),
    "--top 0": (["--top", "0"], ["at least 1"]),
    "--budget 2^x": (["--budget", "2^x"], ["not a budget", "2^12"]),
    "--budget 0": (["--budget", "0"], ["at least 1"]),
    "--budget -4": (["--budget", "-4"], ["not a budget"]),
    "--p 0": (["--p", "0"], ["strictly between 0 and 1"]),
    "--p 1.5": (["--p", "1.5"], ["strictly between 0 and 1"]),
    "--p abc": (["--p", "abc"], ["--p", "invalid float"]),
    "--device banana": (["--device", "banana"], ["not a device", "cpu, cuda"]),
    "--device cuda (no GPU)": _cuda_row(),
    "--mode banana": (["--mode", "banana"], ["invalid choice"]),
    "--pairs some": (["--pairs", "some"], ["invalid choice"]),
    "--seed 1.5": (["--seed", "1.5"], ["--seed", "invalid int"]),
}


@pytest.mark.parametrize("row", sorted(BAD_ARGS))
@pytest.mark.parametrize("command", ["explain", "demo"])
def test_bad_argument_is_refused_before_any_work(
    scene_file, tmp_path, capsys, no_model, row, command
):
    extra, words = BAD_ARGS[row]
    out = tmp_path / "out"
    head = ["--image", str(scene_file[0]), "--text", "a red ring"] if command == "explain" else []
    code = main([command, *head, *extra, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    for word in words:
        assert word in err, (row, err)
    assert "Traceback" not in err
    assert not out.exists()  # nothing written, not even scene.png or the folder


@pytest.mark.parametrize("kind", ["a file", "inside a file", "read-only"])
def test_unusable_out_folder_is_refused_before_any_work(
    scene_file, tmp_path, capsys, no_model, kind
):
    if kind == "read-only":
        out = _readonly_dir(tmp_path)
        if os.access(out, os.W_OK) and os.geteuid() == 0:
            # root may write anyway; a read-only file system is the only refusal then
            out = Path("/proc/fixlip-out")
        words = ["not writable"]
    else:
        (tmp_path / "f").write_text("x")
        out = tmp_path / "f" if kind == "a file" else tmp_path / "f" / "sub"
        words = ["is a file", "--out"]
    code = main(["explain", "--image", str(scene_file[0]), "--text", "a ring", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    for word in words:
        assert word in err, err


def test_bad_image_files(tmp_path, capsys, no_model):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    folder = tmp_path / "folder.png"
    folder.mkdir()
    for path, word in [
        (empty, "Cannot read"),
        (folder, "is a folder"),
        (tmp_path / "no.png", "not found"),
    ]:
        code = main(
            ["explain", "--image", str(path), "--text", "a ring", "--out", str(tmp_path / "o")]
        )
        err = capsys.readouterr().err
        assert code == 2 and word in err, err
        assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "text, value", [("4096", 4096), ("2^12", 4096), ("2**17", 2**17), (" 2 ^ 3 ", 8)]
)
def test_budget_accepts_integers_and_powers(text, value):
    args = build_parser().parse_args(["demo", "--budget", text])
    assert args.budget == value


def test_seed_help_says_it_picks_the_scene():
    demo = build_parser()._subparsers._group_actions[0].choices["demo"]
    assert "scene" in demo.format_help()


def test_ctrl_c_is_one_line_and_exit_130(scene_file, tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fixlip_captum.loading, "load_model", interrupted)
    out = tmp_path / "out"
    code = main(["explain", "--image", str(scene_file[0]), "--text", "a ring", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 130
    assert err.strip().count("\n") == 0 and "interrupted" in err and "Traceback" not in err
    assert not out.exists()


# ---------------------------------------------------------------------- interruptions
def _pause(ready: Path) -> None:
    ready.write_text("now")
    time.sleep(60)


def _child(argv: list[str], point: str, ready: str) -> None:
    """Run ``main(argv)`` in a forked process, pausing at ``point`` until signalled."""
    import matplotlib.figure

    import fixlip_captum.atomic_write as aw
    import fixlip_captum.interaction_values as ivs
    import fixlip_captum.plot.report as report

    flag = Path(ready)
    if point == "explaining":
        original_load = fixlip_captum.loading.load_model

        def load(*args, **kwargs):
            result = original_load(*args, **kwargs)
            _pause(flag)
            return result

        fixlip_captum.loading.load_model = load
    elif point == "json written":
        original_save = ivs.FIxLIPInteractionValues.save

        def save(self, path, **kwargs):
            original_save(self, path, **kwargs)
            _pause(flag)

        ivs.FIxLIPInteractionValues.save = save
    elif point == "png half written":

        def savefig(self, fname, **kwargs):
            Path(fname).write_bytes(b"\x89PNG\r\n\x1a\n half")
            _pause(flag)

        matplotlib.figure.Figure.savefig = savefig
    elif point == "report written":
        original_report = report.write_report

        def write_report(*args, **kwargs):
            path = original_report(*args, **kwargs)
            _pause(flag)
            return path

        report.write_report = write_report
    elif point == "committing":
        original_replace = os.replace
        moved = []

        def replace(src, dst):
            original_replace(src, dst)
            staged = Path(src).parent.name.startswith(".fixlip-staging-")
            if staged and not Path(dst).parent.name.startswith(".fixlip-staging-"):  # commit
                moved.append(dst)
                if len(moved) == 1:
                    _pause(flag)

        aw.os.replace = replace
    code = main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _state(out: Path) -> dict[str, bytes]:
    return {n: (out / n).read_bytes() for n in OUTPUTS if (out / n).exists()}


def _complete(out: Path, caption: str) -> None:
    assert sorted(_state(out)) == OUTPUTS
    iv = load_interaction_values(out / "interactions.json")
    assert iv.context.caption == caption
    assert (out / "explanation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "explanation.png").stat().st_size > 1000
    assert "data:image/png;base64" in (out / "report.html").read_text()
    json.loads((out / "interactions.json").read_text())


POINTS = ["explaining", "json written", "png half written", "report written", "committing"]


@pytest.mark.skipif(sys.platform == "win32", reason="fork and POSIX signals")
def test_interrupted_explain_leaves_all_outputs_or_none(scene_file, tmp_path):
    path, sample = scene_file
    out = tmp_path / "out"
    argv = ["explain", "--image", str(path), "--out", str(out), "--report", *FAST]
    # A first complete run in the folder: an interrupted rerun must not mix with it.
    old_caption = "a purple ring"
    assert main([*argv, "--text", old_caption]) == 0
    old = _state(out)
    assert sorted(old) == OUTPUTS
    ctx = multiprocessing.get_context("fork")
    for point in POINTS:
        for sig in (signal.SIGINT, signal.SIGKILL):
            ready = tmp_path / f"ready-{point}-{sig}"
            proc = ctx.Process(
                target=_child, args=([*argv, "--text", sample.text], point, str(ready))
            )
            proc.start()
            deadline = time.monotonic() + 120
            while not ready.exists() and proc.is_alive() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert ready.exists(), f"{point}: the run never reached the point"
            os.kill(proc.pid, sig)
            proc.join(30)
            assert proc.exitcode == (130 if sig == signal.SIGINT else -signal.SIGKILL), point
            assert _state(out) == old or point == "committing", (point, sig.name)
            if sig == signal.SIGKILL:
                # A killed run may leave its hidden staging folder; the next use of the
                # folder removes it or, when it was marked complete (killed between two
                # renames), finishes it: never old and new files side by side after that.
                with OutputSet(out):
                    pass
            if point == "committing":
                _complete(out, sample.text)  # Ctrl-C during the renames finishes them
            else:
                assert _state(out) == old, f"{point}, {sig.name}: the old outputs changed"
            assert not [p for p in out.iterdir() if p.name.startswith(".")], point
            # Put the old run back for the next point.
            for name, data in old.items():
                (out / name).write_bytes(data)
    # A rerun writes complete outputs.
    assert main([*argv, "--text", sample.text]) == 0
    _complete(out, sample.text)
