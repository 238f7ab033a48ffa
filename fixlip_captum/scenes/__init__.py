"""Procedural scenes with ground truth: coloured shapes in a 2x2 grid, captions naming some.

Every draw is seeded: :func:`generate_sample` with the same arguments returns the same image,
objects and caption. Each :class:`Sample` knows which pixels (and therefore which patches, for
any patch grid) each object covers and which caption words name which object; hard-negative
captions (colour swap, shape swap, absent object) break exactly one of those facts.
"""

from fixlip_captum.scenes.captions import (
    CAPTION_KINDS,
    Caption,
    absent_object_caption,
    caption_matches,
    colour_swap_caption,
    hard_negative,
    render_caption,
    shape_swap_caption,
    split_words,
)
from fixlip_captum.scenes.generator import (
    COLOURS,
    SHAPES,
    Sample,
    SceneObject,
    generate_batch,
    generate_sample,
    render_scene,
)

__all__ = [
    "CAPTION_KINDS",
    "COLOURS",
    "SHAPES",
    "Caption",
    "Sample",
    "SceneObject",
    "absent_object_caption",
    "caption_matches",
    "colour_swap_caption",
    "generate_batch",
    "generate_sample",
    "hard_negative",
    "render_caption",
    "render_scene",
    "shape_swap_caption",
    "split_words",
]
