"""The shipped offline model "scenes-clip": a small open_clip ``CLIP`` trained on
:mod:`fixlip_captum.scenes`.

Importing this package registers the model config with open_clip, so
``open_clip.create_model("scenes-clip")`` builds the (untrained) architecture;
:func:`load_default` returns the trained model, its preprocessing and its tokenizer offline.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fixlip_captum.models.tokenizer import SceneTokenizer

__all__ = [
    "ASSETS_DIR",
    "CHECKPOINT_PATH",
    "CONFIG_PATH",
    "MODEL_CARD_PATH",
    "MODEL_NAME",
    "TEST_SEED",
    "TOKENIZER_PATH",
    "VAL_SEED",
    "SceneTokenizer",
    "get_tokenizer",
    "load_default",
    "register_config",
]

MODEL_NAME = "scenes-clip"
#: First scene seed of the validation scenes of the training logs (never trained on).
VAL_SEED = 500_000_000
#: First scene seed of the held-out test scenes (tests, benchmarks; never trained on or
#: used for validation).
TEST_SEED = 2_000_000_000
ASSETS_DIR = Path(__file__).resolve().parent / "assets"
#: open_clip model config; its file stem is the registered model name.
CONFIG_PATH = ASSETS_DIR / f"{MODEL_NAME}.json"
#: fp16 state dict of the trained model.
CHECKPOINT_PATH = ASSETS_DIR / f"{MODEL_NAME}.pt"
#: Tokenizer vocabulary and context length.
TOKENIZER_PATH = ASSETS_DIR / f"{MODEL_NAME}-tokenizer.json"
#: Training data, recipe and measured metrics (JSON; a markdown twin sits next to it).
MODEL_CARD_PATH = ASSETS_DIR / "model_card.json"


def register_config(path: str | Path = CONFIG_PATH) -> None:
    """Register an open_clip model config JSON (its stem becomes the model name).

    Args:
        path: The config file; default the shipped ``scenes-clip.json``.
    """
    import open_clip

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model config {path} not found; reinstall fixlip-captum")
    open_clip.add_model_config(path)


def get_tokenizer() -> SceneTokenizer:
    """The scenes-clip word-level tokenizer (open_clip's ``get_tokenizer`` would return the
    BPE tokenizer, which does not fit this model)."""
    if not TOKENIZER_PATH.is_file():
        raise FileNotFoundError(
            f"tokenizer file {TOKENIZER_PATH} not found; reinstall fixlip-captum"
        )
    return SceneTokenizer.from_file(TOKENIZER_PATH)


def load_default(
    device: str | torch.device | None = None,
) -> tuple[torch.nn.Module, object, SceneTokenizer]:
    """Load the trained scenes-clip model from package data (no network).

    Args:
        device: Where to put the model (default CPU).

    Returns:
        ``(model, preprocess, tokenizer)``: an open_clip ``CLIP`` in eval mode (fp32), the
        open_clip validation transform (PIL image -> ``[3, 96, 96]`` normalised tensor) and a
        :class:`SceneTokenizer`.
    """
    import open_clip

    if not CHECKPOINT_PATH.is_file():
        raise FileNotFoundError(
            f"scenes-clip weights {CHECKPOINT_PATH} are missing; they ship inside the package "
            "(reinstall fixlip-captum, or train them from a source checkout with "
            "`python benchmarks/train_scenes_clip.py`)"
        )
    register_config()
    model, _, preprocess = open_clip.create_model_and_transforms(
        MODEL_NAME, pretrained=str(CHECKPOINT_PATH), device=device or "cpu"
    )
    model.eval()
    return model, preprocess, get_tokenizer()


if CONFIG_PATH.is_file():
    register_config()
