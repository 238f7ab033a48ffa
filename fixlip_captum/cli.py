"""The ``fixlip`` command (also ``python -m fixlip_captum``).

``fixlip explain --image PATH --text "..."`` explains one image-text pair and writes
``interactions.json`` (shapiq JSON) and ``explanation.png`` (and ``viewer.html`` and
``report.html`` with ``--report``); ``fixlip demo`` does the same on a generated scene with the
shipped model and always writes ``viewer.html``. ``fixlip view interactions.json`` writes the
interactive viewer of saved explanations (several files: side by side).
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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
