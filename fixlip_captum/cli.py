"""The ``fixlip`` command (also ``python -m fixlip_captum``).

``fixlip explain --image PATH --text "..."`` explains one image-text pair and writes
``interactions.json`` (shapiq JSON) and ``explanation.png`` (and ``viewer.html`` and
``report.html`` with ``--report``); ``fixlip demo`` does the same on a generated scene with the
shipped model and always writes ``viewer.html``. ``fixlip view interactions.json`` writes the
interactive viewer of saved explanations (several files: side by side).
``fixlip explain-dataset SOURCE --out DIR`` explains every pair of a dataset
(:func:`fixlip_captum.explain_dataset`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fixlip_captum.loading import DEFAULT_MODEL, ModelSpecError, WeightsUnavailableError

if TYPE_CHECKING:  # heavy imports stay lazy so that `fixlip --help` is instant
    from PIL.Image import Image

    from fixlip_captum.interaction_values import FIxLIPInteractionValues

__all__ = ["main"]


class CLIError(Exception):
    """An error the user can act on; printed without a traceback."""


def _load_image(path: str) -> Image:
    from PIL import Image, UnidentifiedImageError

    file = Path(path)
    if not file.exists():
        raise CLIError(f"Image file not found: {file}")
    if not file.is_file():
        raise CLIError(f"Not a file: {file}")
    try:
        with Image.open(file) as img:
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise CLIError(f"Cannot read {file} as an image ({exc}). Use a PNG or JPEG file.") from exc


def _top_table(iv: FIxLIPInteractionValues, k: int) -> str:
    """The ``k`` strongest pair interactions as a text table."""
    from fixlip_captum.interaction_values import require_context

    ctx = require_context(iv)
    pairs = [(t, float(iv[t])) for t in iv.interaction_lookup if len(t) == 2]
    pairs.sort(key=lambda item: -abs(item[1]))
    lines = [f"{'rank':>4}  {'player':<22} {'player':<22} {'value':>10}"]
    for rank, (term, value) in enumerate(pairs[:k], start=1):
        a, b = (ctx.player_label(i) for i in term)
        lines.append(f"{rank:>4}  {a:<22} {b:<22} {value:>10.4f}")
    if not pairs:
        lines.append("   (no pair interactions were fitted)")
    return "\n".join(lines)


def _explain(
    image: Image,
    text: str,
    *,
    model_spec: str,
    p: float,
    budget: int | None,
    masking: str,
    mode: str,
    pairs: str,
    device: str | None,
    seed: int,
    out: Path,
    top: int,
    report: bool,
    show_progress: bool = True,
    viewer: bool = False,
) -> FIxLIPInteractionValues:
    import matplotlib

    matplotlib.use("Agg")
    from fixlip_captum.attr import FIxLIP
    from fixlip_captum.interaction_values import require_context
    from fixlip_captum.loading import load_model
    from fixlip_captum.plot import plot_joint

    if not text or not text.strip():
        raise CLIError("The caption is empty: pass --text with at least one word.")
    model, tokenizer = load_model(model_spec, device=device)
    explainer = FIxLIP(model, tokenizer, image_masking=masking)
    start = time.perf_counter()
    iv = explainer.attribute_interactions(
        image,
        text,
        p=p,
        budget=budget,
        mode=mode,
        pairs=pairs,
        seed=seed,
        show_progress=show_progress,
    )
    seconds = time.perf_counter() - start
    ctx = require_context(iv)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "interactions.json"
    iv.save(json_path)
    fig = plot_joint(iv, k=top)
    png_path = out / "explanation.png"
    fig.savefig(png_path, dpi=150, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    info = iv.estimation_info
    print(f"model            {model_spec}")
    print(f"caption          {text!r}  ({ctx.n_text} text players)")
    rows, cols = ctx.patch_grid()
    print(f"image            {rows}x{cols} patches ({ctx.n_image} image players)")
    used = info.get("budget")
    print(f"index            {iv.index}  p={iv.p}  budget used={used}  ({seconds:.1f} s)")
    print(f"v(empty)         {ctx.v_empty:.4f}")
    print(f"v(full)          {ctx.v_full:.4f}   (the model's own score for the pair)")
    print(f"\nTop {top} interactions:\n{_top_table(iv, top)}\n")
    print(f"wrote {json_path}")
    print(f"wrote {png_path}")
    viewer_path = None
    if viewer or report:
        viewer_path = iv.to_html(out / "viewer.html", k=top)
        print(f"wrote {viewer_path}  (interactive: open it in a browser)")
    if report:
        from fixlip_captum.plot.report import write_report

        report_path = write_report(
            iv,
            out / "report.html",
            timings={"explanation (s)": seconds},
            viewer_href=None if viewer_path is None else viewer_path.name,
        )
        print(f"wrote {report_path}")
    return iv


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--p", type=float, default=0.5, help="keep-probability in (0, 1)")
    parser.add_argument(
        "--budget",
        type=int,
        default=None,
        help="image-text mask pairs (default: 2^17, more if the caption needs it)",
    )
    parser.add_argument("--masking", choices=("mean", "drop"), default="mean", help="image masking")
    parser.add_argument("--mode", choices=("banzhaf", "shapley"), default="banzhaf")
    parser.add_argument(
        "--pairs", default="all", help="fitted pairs: 'all' or 'crossmodal' (image-text only)"
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mask sampler")
    parser.add_argument("--out", default="fixlip-out", help="output folder")
    parser.add_argument("--top", type=int, default=10, help="interactions listed and drawn")
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
    _add_common(explain)
    demo = sub.add_parser("demo", help="explain a generated scene with the shipped model")
    _add_common(demo)
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
    view.add_argument("--top", type=int, default=10, help="edges drawn when the page opens")
    _add_explain_dataset(sub)
    return parser


def _view(
    files: Sequence[str], out: str | None, image: str | None, title: str | None, top: int
) -> None:
    """``fixlip view``: load saved explanations and write their viewer page."""
    from fixlip_captum.plot.viewer import load_explanations, write_viewer

    named = load_explanations(files, image=None if image is None else _load_image(image))
    path = Path(out) if out is not None else Path(files[0]).with_suffix(".html")
    write_viewer(named, path, title=title, k=top)
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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "explain-dataset":
        return _run_explain_dataset(args)
    if args.command == "view":
        try:
            _view(args.files, args.out, args.image, args.title, args.top)
        except (CLIError, FileNotFoundError, ValueError) as exc:
            print(f"fixlip: error: {exc}", file=sys.stderr)
            return 2
        return 0
    common = dict(
        p=args.p,
        masking=args.masking,
        mode=args.mode,
        pairs=args.pairs,
        device=args.device,
        seed=args.seed,
        out=Path(args.out),
        top=args.top,
        report=args.report,
        show_progress=not args.no_progress,
    )
    try:
        if args.command == "explain":
            image = _load_image(args.image)
            _explain(image, args.text, model_spec=args.model, budget=args.budget, **common)
        else:
            from fixlip_captum.scenes import generate_sample

            sample = generate_sample(args.seed)
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            sample.image.save(out / "scene.png")
            print(f"scene            {out / 'scene.png'}  (seed {args.seed})")
            _explain(
                sample.image,
                sample.text,
                model_spec=DEFAULT_MODEL,
                budget=args.budget,
                viewer=True,
                **common,
            )
            print(f"\nOpen {out / 'viewer.html'} in a browser to explore the explanation.")
    except (CLIError, ModelSpecError, WeightsUnavailableError, FileNotFoundError) as exc:
        print(f"fixlip: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # bad p, budget too small, ...: the message says what to do
        print(f"fixlip: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
