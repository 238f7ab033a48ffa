"""The ``fixlip`` command (also ``python -m fixlip_captum``).

``fixlip explain --image PATH --text "..."`` explains one image-text pair and writes
``interactions.json`` (shapiq JSON) and ``explanation.png`` (and ``viewer.html`` and
``report.html`` with ``--report``); ``fixlip demo`` does the same on a generated scene with the
shipped model and always writes ``viewer.html``. ``fixlip view interactions.json`` writes the
interactive viewer of saved explanations (several files: side by side).
``fixlip explain-dataset SOURCE --out DIR`` explains every pair of a dataset
(:func:`fixlip_captum.explain_dataset`).

Every argument is checked before the model is loaded and before anything is written; a
run's outputs appear together when it finishes (:class:`~fixlip_captum.atomic_write.OutputSet`),
so an interrupted run leaves the output folder as it was. Each subcommand is one
``_run_<name>(args)`` function registered in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fixlip_captum.loading import DEFAULT_MODEL, ModelSpecError, WeightsUnavailableError

if TYPE_CHECKING:  # heavy imports stay lazy so that `fixlip --help` is instant
    from PIL.Image import Image

    from fixlip_captum.atomic_write import OutputSet
    from fixlip_captum.interaction_values import FIxLIPInteractionValues

__all__ = ["COMMANDS", "build_parser", "main"]

#: Exit status of an interrupted run (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


class CLIError(Exception):
    """An error the user can act on; printed without a traceback."""


# ---------------------------------------------------------------------- argument types
def budget_arg(text: str) -> int:
    """``--budget``: a positive integer, written ``4096``, ``2^12`` or ``2**12``."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:(?:\^|\*\*)\s*(\d+)\s*)?", text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a budget; write a positive integer such as 4096 or 2^12."
        )
    base, exponent = int(match.group(1)), match.group(2)
    if exponent is not None and int(exponent) > 64:
        raise argparse.ArgumentTypeError(f"{text!r} is far too large a budget.")
    value = base ** int(exponent) if exponent is not None else base
    if value < 1:
        raise argparse.ArgumentTypeError(f"the budget must be at least 1, got {text!r}.")
    return value


def positive_int_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer.") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}.")
    return value


def check_device(spec: str | None) -> str | None:
    """``--device`` as given, if this machine has it; otherwise a :class:`CLIError`."""
    if spec is None:
        return None
    import torch

    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError):
        raise CLIError(
            f"--device {spec!r} is not a device; use cpu, cuda, cuda:1, mps, ..."
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise CLIError(
                f"--device {spec}: no CUDA GPU is available on this machine (torch "
                f"{torch.__version__}, CUDA build: {torch.version.cuda or 'none'}); use "
                "--device cpu."
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise CLIError(
                f"--device {spec}: this machine has {torch.cuda.device_count()} CUDA "
                f"device(s), numbered from 0."
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise CLIError(f"--device {spec}: MPS is not available here; use --device cpu.")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise CLIError(f"--device {spec}: only cpu, cuda[:N] and mps are supported.")
    return spec


def check_out(path: str) -> Path:
    """``--out`` as a Path if it is (or can become) a writable folder."""
    from fixlip_captum.atomic_write import check_writable_dir

    try:
        return check_writable_dir(path, "--out folder")
    except (NotADirectoryError, PermissionError) as exc:
        raise CLIError(str(exc)) from None


def check_settings(args: argparse.Namespace) -> None:
    """The estimator settings, checked by the library's own entry check (fast, no model)."""
    from fixlip_captum.settings import Settings

    Settings.create(mode=args.mode, p=args.p, budget=args.budget)


# ---------------------------------------------------------------------- output
def _load_image(path: str) -> Image:
    from fixlip_captum.images import load_image

    try:
        return load_image(path)
    except (FileNotFoundError, IsADirectoryError, ValueError) as exc:
        raise CLIError(str(exc)) from None


def _top_table(iv: FIxLIPInteractionValues, k: int) -> str:
    """The ``k`` strongest pair interactions as a text table (tokens with their position)."""
    from fixlip_captum.interaction_values import require_context

    ctx = require_context(iv)
    pairs = [(t, float(iv[t])) for t in iv.interaction_lookup if len(t) == 2]
    pairs.sort(key=lambda item: -abs(item[1]))
    lines = [f"{'rank':>4}  {'player':<22} {'player':<22} {'value':>10}"]
    for rank, (term, value) in enumerate(pairs[:k], start=1):
        a, b = (ctx.table_label(i) for i in term)
        lines.append(f"{rank:>4}  {a:<22} {b:<22} {value:>10.4f}")
    if not pairs:
        lines.append("   (no pair interactions were fitted)")
    return "\n".join(lines)


def _explain(
    image: Image,
    text: str,
    args: argparse.Namespace,
    outputs: OutputSet,
    model_spec: str,
    viewer: bool = False,
) -> FIxLIPInteractionValues:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fixlip_captum.attr import FIxLIP
    from fixlip_captum.interaction_values import require_context
    from fixlip_captum.loading import load_model
    from fixlip_captum.plot import plot_joint

    model, tokenizer = load_model(model_spec, device=args.device)
    explainer = FIxLIP(model, tokenizer, image_masking=args.masking)
    start = time.perf_counter()
    iv = explainer.attribute_interactions(
        image,
        text,
        p=args.p,
        budget=args.budget,
        mode=args.mode,
        pairs=args.pairs,
        seed=args.seed,
        show_progress=not args.no_progress,
    )
    seconds = time.perf_counter() - start
    ctx = require_context(iv)
    iv.save(outputs.path("interactions.json"))
    fig = plot_joint(iv, k=args.top)
    fig.savefig(outputs.path("explanation.png"), dpi=150, bbox_inches="tight")
    plt.close(fig)
    if viewer or args.report:
        iv.to_html(outputs.path("viewer.html"), k=args.top)
    if args.report:
        from fixlip_captum.plot.report import write_report

        write_report(
            iv,
            outputs.path("report.html"),
            timings={"explanation (s)": seconds},
            viewer_href="viewer.html",
        )
    info = iv.estimation_info
    print(f"model            {model_spec}")
    print(f"caption          {text!r}  ({ctx.n_text} text players)")
    rows, cols = ctx.patch_grid()
    print(f"image            {rows}x{cols} patches ({ctx.n_image} image players)")
    used = info.get("budget")
    print(f"index            {iv.index}  p={iv.p}  budget used={used}  ({seconds:.1f} s)")
    print(f"v(empty)         {ctx.v_empty:.4f}")
    print(f"v(full)          {ctx.v_full:.4f}   (the model's own score for the pair)")
    print(f"\nTop {args.top} interactions:\n{_top_table(iv, args.top)}\n")
    return iv


def _checked(args: argparse.Namespace, text: str | None, model_spec: str) -> Path:
    """Every check that needs no model and writes nothing; returns the output folder."""
    from fixlip_captum.loading import offline_unless_reachable

    # First, before the hub clients are imported: offline, missing weights fail in seconds.
    offline_unless_reachable(model_spec)
    if text is not None and not text.strip():
        raise CLIError("The caption is empty: pass --text with at least one word.")
    check_settings(args)
    check_device(args.device)
    return check_out(args.out)


def _report_written(outputs: OutputSet) -> None:
    for path in outputs.written:
        hint = "  (interactive: open it in a browser)" if path.name == "viewer.html" else ""
        print(f"wrote {path}{hint}")


# ---------------------------------------------------------------------- subcommands
def _run_explain(args: argparse.Namespace) -> None:
    from fixlip_captum.atomic_write import OutputSet

    out = _checked(args, args.text, args.model)
    image = _load_image(args.image)
    with OutputSet(out) as outputs:
        _explain(image, args.text, args, outputs, args.model)
    _report_written(outputs)


def _run_demo(args: argparse.Namespace) -> None:
    from fixlip_captum.atomic_write import OutputSet
    from fixlip_captum.scenes import generate_sample

    out = _checked(args, None, DEFAULT_MODEL)
    sample = generate_sample(args.seed)
    with OutputSet(out) as outputs:
        sample.image.save(outputs.path("scene.png"))
        print(f"scene            {out / 'scene.png'}  (seed {args.seed})")
        _explain(sample.image, sample.text, args, outputs, DEFAULT_MODEL, viewer=True)
    _report_written(outputs)
    print(f"\nOpen {out / 'viewer.html'} in a browser to explore the explanation.")


def _run_view(args: argparse.Namespace) -> None:
    """``fixlip view``: load saved explanations and write their viewer page."""
    from fixlip_captum.plot.viewer import load_explanations, write_viewer

    path = Path(args.out) if args.out is not None else Path(args.files[0]).with_suffix(".html")
    check_out(str(path.parent))
    image = None if args.image is None else _load_image(args.image)
    named = load_explanations(args.files, image=image)
    write_viewer(named, path, title=args.title, k=args.top)
    print(f"wrote {path}  (open it in a browser)")


def _add_explain_dataset(sub: argparse._SubParsersAction) -> None:
    """``fixlip explain-dataset``: options mirror :func:`fixlip_captum.explain_dataset`."""
    cmd = sub.add_parser(
        "explain-dataset",
        help="explain every pair of a dataset into Parquet (resumable; local or Ray)",
        description="Explain every image-text pair of SOURCE into a Parquet dataset in --out. "
        "Rerunning the same command continues an interrupted run; failed rows become error "
        "rows. Exit status: 0, or 1 when nothing succeeded (or, with --strict, when a row "
        "failed), 2 on bad arguments, 130 when interrupted.",
    )
    cmd.add_argument(
        "source", help="JSONL/CSV manifest (image, text[, id]) or imagefolder with metadata"
    )
    cmd.add_argument("--out", required=True, help="results folder (Parquet parts)")
    cmd.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="scenes-clip (offline default) | open_clip:ARCH:PRETRAINED | hf:MODEL_ID",
    )
    cmd.add_argument("--p", type=float, default=0.5, help="keep-probability in (0, 1)")
    cmd.add_argument(
        "--budget", type=int, default=None, help="mask pairs per explanation (default 2^17+)"
    )
    cmd.add_argument("--pairs", choices=("all", "crossmodal"), default="all")
    cmd.add_argument("--masking", choices=("mean", "drop"), default="mean")
    cmd.add_argument("--mode", choices=("banzhaf", "shapley"), default="banzhaf")
    cmd.add_argument("--engine", choices=("local", "ray"), default="local")
    cmd.add_argument("--workers", type=int, default=1, help="Ray workers (one model each)")
    cmd.add_argument("--gpus-per-worker", type=float, default=None, help="default 1 if GPUs")
    cmd.add_argument("--cpus-per-worker", type=float, default=None)
    cmd.add_argument("--address", default=None, help="Ray cluster to join (default: local)")
    cmd.add_argument("--device", default=None, help="local engine: cpu, cuda, cuda:1, ...")
    cmd.add_argument("--seed", type=int, default=0, help="run seed (pair seeds derive from it)")
    cmd.add_argument("--limit", type=int, default=None, help="only the first K rows")
    cmd.add_argument("--shard", default=None, help="I/N: only rows with position %% N == I")
    cmd.add_argument("--overwrite", action="store_true", help="delete previous results first")
    cmd.add_argument("--strict", action="store_true", help="exit 1 when any row failed")
    cmd.add_argument("--json", action="store_true", help="also write shapiq JSON per pair")
    cmd.add_argument("--image-column", default=None, help="default image (file_name)")
    cmd.add_argument("--text-column", default="text")
    cmd.add_argument("--id-column", default=None, help="default id when present, else row")
    cmd.add_argument("--part-size", type=int, default=32, help="pairs per Parquet part")
    cmd.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _run_explain_dataset(args: argparse.Namespace) -> int:
    from fixlip_captum.batch import explain_dataset

    try:
        summary = explain_dataset(
            args.source,
            args.out,
            model=args.model,
            p=args.p,
            budget=args.budget,
            pairs=args.pairs,
            masking=args.masking,
            mode=args.mode,
            engine=args.engine,
            workers=args.workers,
            gpus_per_worker=args.gpus_per_worker,
            cpus_per_worker=args.cpus_per_worker,
            address=args.address,
            device=args.device,
            seed=args.seed,
            limit=args.limit,
            shard=args.shard,
            overwrite=args.overwrite,
            json=args.json,
            image_column=args.image_column,
            text_column=args.text_column,
            id_column=args.id_column,
            part_size=args.part_size,
            show_progress=not args.no_progress,
        )
    except KeyboardInterrupt:
        print(
            "fixlip: interrupted; finished pairs are saved, run the same command to continue",
            file=sys.stderr,
        )
        return 130
    except (ModelSpecError, WeightsUnavailableError, FileNotFoundError, ValueError) as exc:
        print(f"fixlip: error: {exc}", file=sys.stderr)
        return 2
    except (ImportError, RuntimeError) as exc:
        print(f"fixlip: error: {exc}", file=sys.stderr)
        return 1
    print(summary.format())
    if summary.failed and not summary.done:  # nothing this run tried succeeded
        return 1
    return 1 if args.strict and summary.failed else 0


#: Subcommand name -> the function that runs it (after argparse); ``None`` means exit 0.
COMMANDS: dict[str, Callable[[argparse.Namespace], int | None]] = {
    "explain": _run_explain,
    "demo": _run_demo,
    "view": _run_view,
    "explain-dataset": _run_explain_dataset,
}


# ---------------------------------------------------------------------- parser
def _add_common(parser: argparse.ArgumentParser, seed_help: str) -> None:
    parser.add_argument("--p", type=float, default=0.5, help="keep-probability in (0, 1)")
    parser.add_argument(
        "--budget",
        type=budget_arg,
        default=None,
        help="image-text mask pairs, e.g. 4096 or 2^12 (default: 2^17, more if the caption "
        "needs it)",
    )
    parser.add_argument("--masking", choices=("mean", "drop"), default="mean", help="image masking")
    parser.add_argument("--mode", choices=("banzhaf", "shapley"), default="banzhaf")
    parser.add_argument(
        "--pairs",
        choices=("all", "crossmodal"),
        default="all",
        help="fitted pairs: 'all' or 'crossmodal' (image-text only)",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default cpu)")
    parser.add_argument("--seed", type=int, default=0, help=seed_help)
    parser.add_argument("--out", default="fixlip-out", help="output folder")
    parser.add_argument(
        "--top", type=positive_int_arg, default=10, help="interactions listed and drawn (>= 1)"
    )
    parser.add_argument(
        "--report", action="store_true", help="also write report.html and viewer.html"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fixlip",
        description="Explain why a CLIP/SigLIP model matches an image and a caption (FIxLIP).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    explain = sub.add_parser("explain", help="explain one image-text pair")
    explain.add_argument("--image", required=True, help="image file (PNG, JPEG, ...)")
    explain.add_argument("--text", required=True, help="the caption")
    explain.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="scenes-clip (offline default) | open_clip:ARCH:PRETRAINED | hf:MODEL_ID",
    )
    _add_common(explain, "seed of the mask sampler")
    demo = sub.add_parser("demo", help="explain a generated scene with the shipped model")
    _add_common(demo, "seed of the generated scene and of the mask sampler")
    view = sub.add_parser(
        "view", help="write the interactive viewer (one HTML file) of saved explanations"
    )
    view.add_argument(
        "files", nargs="+", help="interactions.json file(s) of one pair; several: side by side"
    )
    view.add_argument("--out", default=None, help="page to write (default: FIRST_FILE.html)")
    view.add_argument(
        "--image", default=None, help="the explained image (JSON files do not hold it)"
    )
    view.add_argument("--title", default=None, help="page title (default: the caption)")
    view.add_argument(
        "--top", type=positive_int_arg, default=10, help="edges drawn when the page opens"
    )
    _add_explain_dataset(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # --help, or a usage error argparse has already printed
            return exc.code if isinstance(exc.code, int) else 2
        code = COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("fixlip: interrupted (a run writes all its outputs or none).", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (CLIError, ModelSpecError, WeightsUnavailableError, FileNotFoundError) as exc:
        print(f"fixlip: error: {exc}", file=sys.stderr)
        return 2
    except (
        ValueError,
        TypeError,
    ) as exc:  # bad p, budget too small, ...: the message says what to do
        print(f"fixlip: error: {exc}", file=sys.stderr)
        return 2
    return 0 if code is None else code


if __name__ == "__main__":
    raise SystemExit(main())
