"""Captions: phrasing templates, word-to-object ground truth and hard negatives."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from fixlip_captum.scenes.objects import COLOURS, SHAPES, SceneObject

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "CAPTION_KINDS",
    "CAPTION_VOCABULARY",
    "Caption",
    "absent_object_caption",
    "caption_matches",
    "colour_swap_caption",
    "draw_template",
    "hard_negative",
    "render_caption",
    "shape_swap_caption",
    "split_words",
]

#: ``"positive"`` plus the hard-negative kinds accepted by :func:`hard_negative`.
CAPTION_KINDS = ("positive", "colour_swap", "shape_swap", "absent")

_PREFIXES: tuple[tuple[str, ...], ...] = (
    (),
    (),
    ("a", "photo", "of"),
    ("an", "image", "of"),
    ("a", "picture", "of"),
    ("there", "is"),
    ("i", "see"),
    ("a", "scene", "with"),
    ("a", "drawing", "of"),
    ("this", "shows"),
)
_PAIR_CONNECTORS: tuple[tuple[str, ...], ...] = (
    ("and",),
    ("and",),
    ("with",),
    ("next", "to"),
    ("beside",),
    ("and", "also"),
)
_LIST_STYLES = ("comma", "and", "mixed")
_P_SHAPE_FIRST = 0.15  # "a circle in red" instead of "a red circle"
_P_DEFINITE = 0.1  # "the red circle" instead of "a red circle"

#: Every word a generated caption can contain (the scenes-clip vocabulary is built from it).
CAPTION_VOCABULARY: tuple[str, ...] = tuple(
    dict.fromkeys(
        [w for p in _PREFIXES for w in p]
        + [w for c in _PAIR_CONNECTORS for w in c]
        + ["a", "an", "the", "in", ","]
        + list(COLOURS)
        + list(SHAPES)
    )
)


class CaptionedScene(Protocol):
    """What the hard negatives read from a scene: its objects and its caption (a
    :class:`~fixlip_captum.scenes.Sample` is one)."""

    @property
    def objects(self) -> Sequence[SceneObject]: ...

    @property
    def caption(self) -> Caption: ...


_WORD_RE = re.compile(r"[a-z]+|,")


def split_words(text: str) -> list[str]:
    """Lower-case words and commas of ``text``, the unit of the scenes-clip tokenizer
    (other characters are dropped)."""
    return _WORD_RE.findall(text.lower())


@dataclass(frozen=True)
class Caption:
    """A caption and what its words refer to.

    Attributes:
        text: The caption string.
        words: ``split_words(text)``.
        word_objects: Per word, the index of the scene object it names (colour and shape
            words of a mention that matches an object), else None.
        mentions: ``(colour, shape)`` per mentioned object, in caption order.
        mention_objects: Per mention, the index of the matching scene object, or None when
            the mention matches no object (hard negatives).
        word_spans: ``(first_word, end_word, object_index)`` per matching mention: the words
            from its first attribute word to its last (end exclusive), article excluded.
        template: The phrasing choices, so negatives can reuse them (minimal pairs).
    """

    text: str
    words: list[str]
    word_objects: list[int | None]
    mentions: tuple[tuple[str, str], ...]
    mention_objects: tuple[int | None, ...]
    word_spans: list[tuple[int, int, int]]
    template: dict

    @property
    def char_spans(self) -> list[tuple[int, int]]:
        """``(start, end)`` character offsets of each word in :attr:`text` (to map the
        ground truth onto sub-word tokenizers)."""
        return [(m.start(), m.end()) for m in _WORD_RE.finditer(self.text.lower())]


def draw_template(n_mentions: int, rng: np.random.Generator) -> dict:
    """Random phrasing for a caption with ``n_mentions`` objects: prefix, per-mention word
    order, connectors between mentions."""
    if n_mentions < 1:
        raise ValueError(f"n_mentions must be >= 1, got {n_mentions}")
    prefix = _PREFIXES[int(rng.integers(len(_PREFIXES)))]
    shape_first = [bool(rng.random() < _P_SHAPE_FIRST) for _ in range(n_mentions)]
    definite = [bool(rng.random() < _P_DEFINITE) for _ in range(n_mentions)]
    if n_mentions == 2:
        connectors = [_PAIR_CONNECTORS[int(rng.integers(len(_PAIR_CONNECTORS)))]]
    else:
        style = _LIST_STYLES[int(rng.integers(len(_LIST_STYLES)))]
        connectors = []
        for k in range(n_mentions - 1):
            last = k == n_mentions - 2
            if style == "comma":
                connectors.append((",", "and") if last else (",",))
            elif style == "and":
                connectors.append(("and",))
            else:
                connectors.append(_PAIR_CONNECTORS[int(rng.integers(len(_PAIR_CONNECTORS)))])
    return {
        "prefix": prefix,
        "shape_first": shape_first,
        "definite": definite,
        "connectors": connectors,
    }


def _article(word: str, definite: bool) -> str:
    if definite:
        return "the"
    return "an" if word[0] in "aeiou" else "a"


def render_caption(
    mentions: Sequence[tuple[str, str]],
    mention_objects: Sequence[int | None],
    template: dict,
) -> Caption:
    """Put mentions into words.

    Args:
        mentions: ``(colour, shape)`` per mention.
        mention_objects: Scene object index per mention, or None if it matches no object.
        template: From :func:`draw_template` with ``len(mentions)`` mentions.

    Returns:
        A :class:`Caption`.
    """
    if len(mentions) != len(mention_objects) or len(mentions) != len(template["shape_first"]):
        raise ValueError("mentions, mention_objects and template must have the same length")
    words: list[str] = list(template["prefix"])
    owners: list[int | None] = [None] * len(words)
    spans = []
    for k, ((colour, shape), obj) in enumerate(zip(mentions, mention_objects, strict=True)):
        if k > 0:
            conn = template["connectors"][k - 1]
            words += conn
            owners += [None] * len(conn)
        if template["shape_first"][k]:
            phrase = [_article(shape, template["definite"][k]), shape, "in", colour]
            own = [None, obj, None, obj]
        else:
            phrase = [_article(colour, template["definite"][k]), colour, shape]
            own = [None, obj, obj]
        start = len(words) + 1
        words += phrase
        owners += own
        if obj is not None:
            spans.append((start, len(words), int(obj)))
    text = " ".join(words).replace(" ,", ",")
    return Caption(
        text=text,
        words=words,
        word_objects=owners,
        mentions=tuple((colour, shape) for colour, shape in mentions),
        mention_objects=tuple(mention_objects),
        word_spans=spans,
        template=template,
    )


def caption_matches(objects: Sequence[SceneObject], caption: Caption) -> bool:
    """True iff every mention names an object in ``objects`` (colour and shape together)."""
    keys = {o.key for o in objects}
    return all(tuple(m) in keys for m in caption.mentions)


def _swap(sample: CaptionedScene, rng: np.random.Generator, attr: int) -> Caption:
    """Break the colour (attr 0) or shape (attr 1) binding of one or two mentions."""
    cap = sample.caption
    mentions = [list(m) for m in cap.mentions]
    owners = list(cap.mention_objects)
    if len(mentions) >= 2:
        a, b = (int(i) for i in rng.choice(len(mentions), 2, replace=False))
        mentions[a][attr], mentions[b][attr] = mentions[b][attr], mentions[a][attr]
        owners[a] = owners[b] = None
    else:
        # One mention: give it the attribute of another object in the scene (or, with a single
        # object, an attribute the scene lacks).
        own = mentions[0][attr]
        others = [o.key[attr] for o in sample.objects if o.key[attr] != own]
        if not others:
            pool = list(COLOURS) if attr == 0 else list(SHAPES)
            others = [v for v in pool if v != own]
        mentions[0][attr] = others[int(rng.integers(len(others)))]
        owners[0] = None
    return render_caption([(colour, shape) for colour, shape in mentions], owners, cap.template)


def colour_swap_caption(sample: CaptionedScene, rng: np.random.Generator) -> Caption:
    """Swap the colours of two named objects (one named object: take another object's
    colour). Same phrasing as the sample's caption; never describes the scene because the
    objects of a scene have distinct colours and shapes."""
    return _swap(sample, rng, 0)


def shape_swap_caption(sample: CaptionedScene, rng: np.random.Generator) -> Caption:
    """Swap the shapes of two named objects (one named object: take another object's
    shape). Same phrasing as the sample's caption."""
    return _swap(sample, rng, 1)


def absent_object_caption(sample: CaptionedScene, rng: np.random.Generator) -> Caption:
    """Replace one named object by a ``(colour, shape)`` pair that is not in the scene."""
    cap = sample.caption
    present = {o.key for o in sample.objects}
    candidates = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in present]
    k = int(rng.integers(len(cap.mentions)))
    mentions = list(cap.mentions)
    owners = list(cap.mention_objects)
    mentions[k] = candidates[int(rng.integers(len(candidates)))]
    owners[k] = None
    return render_caption(mentions, owners, cap.template)


def hard_negative(sample: CaptionedScene, kind: str, rng: np.random.Generator) -> Caption:
    """A caption in the sample's phrasing that does not describe its scene.

    Args:
        sample: The scene.
        kind: ``"colour_swap"``, ``"shape_swap"`` or ``"absent"``.
        rng: Source of the random choices.

    Returns:
        A :class:`Caption` with ``caption_matches(sample.objects, caption) == False``.
    """
    makers = {
        "colour_swap": colour_swap_caption,
        "shape_swap": shape_swap_caption,
        "absent": absent_object_caption,
    }
    if kind not in makers:
        raise ValueError(f"unknown hard-negative kind {kind!r}; choose one of {list(makers)}")
    return makers[kind](sample, rng)
