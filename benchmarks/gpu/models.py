"""The models the GPU check runs on: every registered family, random-init, built offline.

Two sizes per entry: ``real`` (the published architecture at 224 px, random weights) for the
GPU run, and ``tiny`` (the test suite's builders in ``tests/_models.py``) for ``--smoke`` on
CPU. Tokenizers and processors are the offline ones the tests use (a small word vocabulary
or open_clip's bundled BPE): with random weights the vocabulary only decides the token ids.
Nothing is downloaded.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[2]
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import _models as tiny  # type: ignore[import-not-found]  # noqa: E402  (tests/_models.py)

#: The caption explained: 10 players with every tokenizer used here (each word one token).
CAPTION = "a photo of a big red dog on the grass"
#: The ``--smoke`` caption: 3 players, so that a few thousand pairs identify all pairs.
SMOKE_CAPTION = "a red dog"


def caption(smoke: bool) -> str:
    return SMOKE_CAPTION if smoke else CAPTION


@dataclass(frozen=True)
class ModelSpec:
    """One model of the check.

    Attributes:
        name: Label in the report (``"open_clip ViT-B-16"``).
        family: The registry family it must be served by (checked by the run).
        real: Builds ``(model, tokenizer_or_processor)`` at the real size.
        tiny: Builds the same family at the test suite's tiny size.
        image_size: Side of the (square) preprocessed image, ``(real, tiny)``.
        speed: Whether the speed section times it (the issue's four models).
    """

    name: str
    family: str
    real: Callable[[], tuple[Any, Any]]
    tiny: Callable[[], tuple[Any, Any]]
    image_size: tuple[int, int]
    speed: bool = False


def _seeded(seed: int) -> None:
    torch.manual_seed(seed)


def _open_clip(name: str, tokenizer: Callable[[], Any] | None) -> Callable[[], tuple[Any, Any]]:
    def build() -> tuple[Any, Any]:
        import open_clip

        _seeded(0)
        model = open_clip.create_model(name, pretrained=None)
        return model.eval(), (tokenizer() if tokenizer else None)

    return build


def _siglip_tokenizer() -> Any:
    return tiny.WordTokenizer(tiny.SIGLIP_WORDS, context_length=64)


def _hf_clip() -> tuple[Any, Any]:
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(
        text_config=dict(
            max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1
        ),
        vision_config=dict(image_size=224, patch_size=16),
        projection_dim=512,
    )
    _seeded(10)
    return CLIPModel(config).eval(), tiny.hf_clip_processor()


def _siglip_text(pad: int, eos: int, bos: int) -> dict:
    return dict(max_position_embeddings=64, pad_token_id=pad, eos_token_id=eos, bos_token_id=bos)


def _hf_siglip() -> tuple[Any, Any]:
    from transformers import SiglipConfig, SiglipModel

    config = SiglipConfig(
        text_config=_siglip_text(pad=1, eos=1, bos=0),
        vision_config=dict(image_size=224, patch_size=16),
    )
    _seeded(11)
    return SiglipModel(config).eval(), tiny.hf_siglip_processor()


def _hf_siglip2() -> tuple[Any, Any]:
    from transformers import Siglip2Config, Siglip2Model

    config = Siglip2Config(
        text_config=_siglip_text(pad=0, eos=1, bos=2),
        vision_config=dict(num_patches=196, patch_size=16),
    )
    _seeded(12)
    return Siglip2Model(config).eval(), tiny.hf_siglip2_processor()


def _hf_chinese_clip() -> tuple[Any, Any]:
    from transformers import ChineseCLIPConfig, ChineseCLIPModel

    config = ChineseCLIPConfig(
        text_config=dict(max_position_embeddings=512, pad_token_id=0),
        vision_config=dict(image_size=224, patch_size=16),
        projection_dim=512,
    )
    _seeded(13)
    return ChineseCLIPModel(config).eval(), tiny.hf_chinese_clip_processor()


def _hf_metaclip2() -> tuple[Any, Any]:
    from transformers import MetaClip2Config, MetaClip2Model

    processor = tiny.hf_clip_processor()
    config = MetaClip2Config(
        text_config=dict(
            vocab_size=len(processor.tokenizer),
            max_position_embeddings=77,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        ),
        vision_config=dict(image_size=224, patch_size=16),
        projection_dim=512,
    )
    _seeded(14)
    return MetaClip2Model(config).eval(), processor


def _pair(model: Callable[[], Any], tok: Callable[[], Any]) -> Callable[[], tuple[Any, Any]]:
    return lambda: (model(), tok())


SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "open_clip ViT-B-32",
        "open_clip",
        _open_clip("ViT-B-32", None),
        _pair(tiny.tiny_open_clip_clip, tiny.open_clip_bpe_tokenizer),
        (224, 32),
        speed=True,
    ),
    ModelSpec(
        "open_clip ViT-B-16",
        "open_clip",
        _open_clip("ViT-B-16", None),
        _pair(tiny.tiny_open_clip_clip, tiny.open_clip_bpe_tokenizer),
        (224, 32),
        speed=True,
    ),
    ModelSpec(
        "open_clip ViT-B-16-SigLIP",
        "open_clip",
        _open_clip("ViT-B-16-SigLIP", _siglip_tokenizer),
        _pair(tiny.tiny_open_clip_siglip, tiny.siglip_word_tokenizer),
        (224, 32),
        speed=True,
    ),
    ModelSpec(
        "transformers CLIPModel B/16",
        "hf_clip",
        _hf_clip,
        _pair(tiny.tiny_hf_clip, tiny.hf_clip_processor),
        (224, 32),
        speed=True,
    ),
    ModelSpec(
        "transformers SiglipModel B/16",
        "hf_siglip",
        _hf_siglip,
        _pair(tiny.tiny_hf_siglip, tiny.hf_siglip_processor),
        (224, 32),
    ),
    ModelSpec(
        "transformers Siglip2Model B/16",
        "hf_siglip2",
        _hf_siglip2,
        _pair(tiny.tiny_hf_siglip2, tiny.hf_siglip2_processor),
        (224, 32),
    ),
    ModelSpec(
        "transformers ChineseCLIPModel B/16",
        "hf_chinese_clip",
        _hf_chinese_clip,
        _pair(tiny.tiny_hf_chinese_clip, tiny.hf_chinese_clip_processor),
        (224, 32),
    ),
    ModelSpec(
        "transformers MetaClip2Model B/16",
        "hf_metaclip2",
        _hf_metaclip2,
        _pair(tiny.tiny_hf_metaclip2, tiny.hf_clip_processor),
        (224, 32),
    ),
)


def build(spec: ModelSpec, smoke: bool) -> tuple[Any, Any, torch.Tensor, str]:
    """``(model, tokenizer_or_processor, pixel_values [1, 3, S, S], caption)`` of ``spec``,
    on CPU.

    The image is seeded standard-normal noise, taken by every adapter as an already
    preprocessed tensor.
    """
    model, tok = (spec.tiny if smoke else spec.real)()
    size = spec.image_size[1 if smoke else 0]
    return model, tok, tiny.random_pixels(0, size=size), caption(smoke)
