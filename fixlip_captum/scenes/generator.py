"""Scene rendering: a textured background and 1-4 coloured shapes, one per cell of a 2x2 grid."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

from fixlip_captum.scenes.captions import Caption, draw_template, hard_negative, render_caption
from fixlip_captum.scenes.objects import COLOURS, SHAPES, SceneObject

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "COLOURS",
    "DEFAULT_IMAGE_SIZE",
    "SHAPES",
    "Sample",
    "SceneObject",
    "generate_batch",
    "generate_sample",
    "render_scene",
]

DEFAULT_IMAGE_SIZE = 96
_GRID = 2  # cells per side
# Object radius as a fraction of the cell side, and the colour jitter per channel.
# Object radius as a fraction of the cell side (48 px cells at 96 px: 6.5-8.5 px, so at 16 px
# patches an object sits in about one patch; larger objects split over several patches were not
# learnt by a small ViT in the CPU budget), and centre jitter around the cell centre.
_RADIUS_RANGE = (0.135, 0.177)
_POSITION_JITTER = 0.04
_COLOUR_JITTER = 12
# Probability of 1, 2, 3, 4 objects when ``n_objects`` is not given.
_N_OBJECT_PROBS = (0.1, 0.25, 0.3, 0.35)


def _as_grid(grid: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(grid, int):
        grid = (grid, grid)
    rows, cols = (int(g) for g in grid)
    if rows < 1 or cols < 1:
        raise ValueError(f"grid must be positive (rows, cols), got {grid}")
    return rows, cols


def pixel_patch_index(height: int, width: int, grid: int | tuple[int, int]) -> np.ndarray:
    """Patch index of every pixel for a ``rows x cols`` grid laid evenly over the image.

    Args:
        height: Image height in pixels.
        width: Image width in pixels.
        grid: ``(rows, cols)`` or one int for a square grid.

    Returns:
        ``[H, W]`` int array, row-major patch id ``row * cols + col`` (pixel ``y`` is in patch
        row ``floor(y * rows / H)``, so any grid works, not only divisors of the size).
    """
    rows, cols = _as_grid(grid)
    if rows > height or cols > width:
        raise ValueError(f"grid {rows}x{cols} is finer than the {height}x{width} image")
    r = (np.arange(height) * rows) // height
    c = (np.arange(width) * cols) // width
    return r[:, None] * cols + c[None, :]


@dataclass(eq=False)
class Sample:
    """A rendered scene with its caption and ground truth.

    Attributes:
        array: ``[H, W, 3]`` uint8 pixels.
        objects: The drawn objects, in cell order.
        caption: The caption (:class:`~fixlip_captum.scenes.Caption`) naming some objects.
        seed: The seed that produced the sample.
    """

    array: np.ndarray = field(repr=False)
    objects: list[SceneObject]
    caption: Caption
    seed: int

    @property
    def image(self) -> Image.Image:
        """The scene as an RGB PIL image."""
        return Image.fromarray(self.array, mode="RGB")

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` in pixels."""
        return (int(self.array.shape[0]), int(self.array.shape[1]))

    @property
    def text(self) -> str:
        """The caption string."""
        return self.caption.text

    @property
    def words(self) -> list[str]:
        """Caption words (see :func:`~fixlip_captum.scenes.split_words`)."""
        return self.caption.words

    @property
    def word_objects(self) -> list[int | None]:
        """Per caption word, the index in :attr:`objects` of the object it names, else None."""
        return self.caption.word_objects

    @property
    def named(self) -> list[int]:
        """Indices in :attr:`objects` of the named objects, in caption order."""
        return [i for i in self.caption.mention_objects if i is not None]

    @property
    def named_objects(self) -> list[SceneObject]:
        """The named objects, in caption order."""
        return [self.objects[i] for i in self.named]

    @property
    def word_spans(self) -> list[tuple[int, int, int]]:
        """``(first_word, end_word, object_index)`` per named object (end exclusive); the
        words are the colour and shape words of that mention."""
        return self.caption.word_spans

    def _object_index(self, obj: int | SceneObject) -> int:
        if isinstance(obj, SceneObject):
            for i, o in enumerate(self.objects):
                if o is obj:
                    return i
            raise ValueError("object does not belong to this sample")
        i = int(obj)
        if not 0 <= i < len(self.objects):
            raise IndexError(f"object index {i} out of range for {len(self.objects)} objects")
        return i

    def patch_coverage(self, obj: int | SceneObject, grid: int | tuple[int, int]) -> np.ndarray:
        """Fraction of each patch's pixels covered by an object.

        Args:
            obj: Object index in :attr:`objects`, or the object itself.
            grid: ``(rows, cols)`` patch grid (or one int), e.g. an adapter's ``patch_grid``.

        Returns:
            ``[rows * cols]`` float in ``[0, 1]``, row-major (player ``j`` = row ``j // cols``).
        """
        mask = self.objects[self._object_index(obj)].mask
        rows, cols = _as_grid(grid)
        height, width = mask.shape
        idx = pixel_patch_index(height, width, (rows, cols)).ravel()
        covered = np.bincount(idx, weights=mask.ravel().astype(np.float64), minlength=rows * cols)
        total = np.bincount(idx, minlength=rows * cols)
        return covered / total

    def patch_mask(
        self, obj: int | SceneObject, grid: int | tuple[int, int], min_fraction: float = 0.0
    ) -> np.ndarray:
        """Patches an object covers.

        Args:
            obj: Object index in :attr:`objects`, or the object itself.
            grid: ``(rows, cols)`` patch grid (or one int).
            min_fraction: A patch counts when more than this fraction of its pixels is covered
                (0 = any pixel).

        Returns:
            ``[rows * cols]`` bool, row-major.
        """
        return self.patch_coverage(obj, grid) > min_fraction

    def patch_masks(self, grid: int | tuple[int, int], min_fraction: float = 0.0) -> np.ndarray:
        """:meth:`patch_mask` of every object stacked: ``[n_objects, rows * cols]`` bool."""
        return np.stack([self.patch_mask(i, grid, min_fraction) for i in range(len(self.objects))])

    def hard_negative(self, kind: str, seed: int | None = None) -> Caption:
        """A caption that does not describe this scene; see
        :func:`~fixlip_captum.scenes.hard_negative` (``kind`` in ``"colour_swap"``,
        ``"shape_swap"``, ``"absent"``)."""
        return hard_negative(self, kind, np.random.default_rng(seed))


# ---------------------------------------------------------------------------------------------
# drawing


def _regular_polygon(cx: float, cy: float, r: float, n: int, phase: float) -> list[tuple]:
    return [
        (
            cx + r * math.cos(phase + 2 * math.pi * k / n),
            cy + r * math.sin(phase + 2 * math.pi * k / n),
        )
        for k in range(n)
    ]


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float) -> None:
    """Paint ``shape`` with value 255 on an "L" canvas; sizes are chosen so the shapes have
    comparable extents (all fit in the circle of radius ``r``)."""
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    elif shape == "square":
        h = 0.8 * r
        draw.rectangle((cx - h, cy - h, cx + h, cy + h), fill=255)
    elif shape == "triangle":
        draw.polygon(_regular_polygon(cx, cy + 0.15 * r, 1.1 * r, 3, -math.pi / 2), fill=255)
    elif shape == "star":
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else 0.45 * r
            a = -math.pi / 2 + math.pi * k / 5
            pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
        draw.polygon(pts, fill=255)
    elif shape == "cross":
        w = 0.32 * r
        draw.rectangle((cx - r, cy - w, cx + r, cy + w), fill=255)
        draw.rectangle((cx - w, cy - r, cx + w, cy + r), fill=255)
    elif shape == "ring":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
        ri = 0.55 * r
        draw.ellipse((cx - ri, cy - ri, cx + ri, cy + ri), fill=0)
    elif shape == "diamond":
        draw.polygon(
            [(cx, cy - r), (cx + 0.75 * r, cy), (cx, cy + r), (cx - 0.75 * r, cy)], fill=255
        )
    elif shape == "heart":
        t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        s = r / 16.5
        draw.polygon(
            [(cx + s * a, cy + s * (b + 1.5)) for a, b in zip(x, y, strict=True)], fill=255
        )
    elif shape == "hexagon":
        draw.polygon(_regular_polygon(cx, cy, r, 6, 0.0), fill=255)
    else:
        raise ValueError(f"unknown shape {shape!r}; choose one of {SHAPES}")


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Greyish textured background: a random tint, smooth blotches and pixel noise."""
    base = (rng.uniform(85, 175) + rng.uniform(-18, 18, size=3)).astype(np.float32)
    coarse_n = int(rng.integers(3, 9))
    coarse = rng.standard_normal((coarse_n, coarse_n), dtype=np.float32)
    # Bilinear upsampling through PIL keeps this fast and dependency-free.
    blotch = np.array(
        Image.fromarray(coarse, mode="F").resize((size, size), Image.Resampling.BILINEAR),
        dtype=np.float32,
    )
    blotch *= np.float32(rng.uniform(8, 22))
    if rng.random() < 0.4:  # faint stripes for texture variety
        period = rng.uniform(5, 14)
        angle = rng.uniform(0, np.pi)
        k = 2 * np.pi / period
        ramp = np.arange(size, dtype=np.float32)
        phase = ramp[None, :] * np.float32(k * np.cos(angle)) + ramp[:, None] * np.float32(
            k * np.sin(angle)
        )
        blotch += np.float32(rng.uniform(4, 10)) * np.sin(phase)
    return base[None, None, :] + blotch[:, :, None]


def render_scene(
    rng: np.random.Generator,
    colours: Iterable[str],
    shapes: Iterable[str],
    cells: Iterable[int],
    image_size: int = DEFAULT_IMAGE_SIZE,
) -> tuple[np.ndarray, list[SceneObject]]:
    """Draw the given objects (colour, shape, cell) with random jitter.

    Args:
        rng: Source of all randomness (background, jitter, noise).
        colours: Colour name per object.
        shapes: Shape name per object.
        cells: Cell ``0..3`` per object (distinct).
        image_size: Side in pixels; a multiple of 2.

    Returns:
        ``(array [H, W, 3] uint8, objects)``.
    """
    colours, shapes, cells = list(colours), list(shapes), list(cells)
    if not (len(colours) == len(shapes) == len(cells)):
        raise ValueError("colours, shapes and cells must have the same length")
    if len(set(cells)) != len(cells) or any(not 0 <= c < _GRID * _GRID for c in cells):
        raise ValueError(f"cells must be distinct values in 0..{_GRID * _GRID - 1}, got {cells}")
    if image_size < 16 or image_size % _GRID:
        raise ValueError(f"image_size must be an even number >= 16, got {image_size}")
    img = _background(rng, image_size)
    cell_px = image_size // _GRID
    objects = []
    for colour, shape, cell in zip(colours, shapes, cells, strict=True):
        if colour not in COLOURS:
            raise ValueError(f"unknown colour {colour!r}; choose one of {list(COLOURS)}")
        r = rng.uniform(*_RADIUS_RANGE) * cell_px
        # Keep the shape inside its cell (1 px margin) so objects never share pixels.
        # Stay inside the cell with a 1 px margin whatever the jitter.
        lo = max(r + 1.0, cell_px * (0.5 - _POSITION_JITTER))
        hi = min(cell_px - r - 1.0, cell_px * (0.5 + _POSITION_JITTER))
        cx = (cell % _GRID) * cell_px + rng.uniform(lo, hi)
        cy = (cell // _GRID) * cell_px + rng.uniform(lo, hi)
        # Draw in cell coordinates on a cell-sized canvas: the shape cannot leave its cell, so
        # objects never share pixels and each one's patches are well defined.
        y0, x0 = (cell // _GRID) * cell_px, (cell % _GRID) * cell_px
        canvas = Image.new("L", (cell_px, cell_px), 0)
        _draw_shape(ImageDraw.Draw(canvas), shape, cx - x0, cy - y0, r)
        local = np.asarray(canvas) > 127
        rgb = np.asarray(COLOURS[colour], dtype=np.float32)
        rgb = rgb + rng.uniform(-_COLOUR_JITTER, _COLOUR_JITTER, size=3).astype(np.float32)
        img[y0 : y0 + cell_px, x0 : x0 + cell_px][local] = rgb
        mask = np.zeros((image_size, image_size), dtype=bool)
        mask[y0 : y0 + cell_px, x0 : x0 + cell_px] = local
        ys, xs = np.nonzero(local)
        bbox = (
            int(xs.min()) + x0,
            int(ys.min()) + y0,
            int(xs.max()) + x0 + 1,
            int(ys.max()) + y0 + 1,
        )
        objects.append(
            SceneObject(colour, shape, int(cell), (float(cx), float(cy)), float(r), bbox, mask)
        )
    img += np.float32(rng.uniform(3, 9)) * rng.standard_normal(img.shape, dtype=np.float32)
    np.clip(img, 0, 255, out=img)
    return (img + 0.5).astype(np.uint8), objects


def generate_sample(
    seed: int,
    n_objects: int | None = None,
    n_named: int | None = None,
    image_size: int = DEFAULT_IMAGE_SIZE,
) -> Sample:
    """One seeded scene with a caption naming some of its objects.

    Objects in one scene have distinct colours and distinct shapes, so a colour or a shape
    word alone identifies an object and swap negatives never describe the scene.

    Args:
        seed: Non-negative int; the same seed and arguments give the same sample.
        n_objects: Objects in the scene, 1-4 (random when None: 1, 2, 3, 4 with
            probabilities 0.1, 0.25, 0.3, 0.35).
        n_named: Objects the caption names, ``1..n_objects`` (uniform when None).
        image_size: Image side in pixels.

    Returns:
        A :class:`Sample`.
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    if n_objects is None:
        n_objects = int(rng.choice(4, p=_N_OBJECT_PROBS)) + 1
    if not 1 <= n_objects <= _GRID * _GRID:
        raise ValueError(f"n_objects must be in 1..4, got {n_objects}")
    if n_named is None:
        n_named = int(rng.integers(1, n_objects + 1))
    if not 1 <= n_named <= n_objects:
        raise ValueError(f"n_named must be in 1..n_objects={n_objects}, got {n_named}")
    colour_names = list(COLOURS)
    colours = [colour_names[i] for i in rng.choice(len(colour_names), n_objects, replace=False)]
    shapes = [SHAPES[i] for i in rng.choice(len(SHAPES), n_objects, replace=False)]
    cells = sorted(int(c) for c in rng.choice(_GRID * _GRID, n_objects, replace=False))
    array, objects = render_scene(rng, colours, shapes, cells, image_size)
    named = [int(i) for i in rng.permutation(n_objects)[:n_named]]
    caption = render_caption([objects[i].key for i in named], named, draw_template(n_named, rng))
    return Sample(array=array, objects=objects, caption=caption, seed=int(seed))


def generate_batch(
    seeds: Iterable[int],
    n_objects: int | None = None,
    n_named: int | None = None,
    image_size: int = DEFAULT_IMAGE_SIZE,
) -> list[Sample]:
    """:func:`generate_sample` for each seed (same keyword arguments for all)."""
    return [generate_sample(s, n_objects, n_named, image_size) for s in seeds]
