"""The scene vocabulary: object colours, shapes, and the record of one drawn object."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["COLOURS", "SHAPES", "SceneObject"]

#: Object colours (name -> RGB). Saturated or extreme, so they stand out from the greyish
#: background; names are single words so a word-level tokenizer maps one word to one colour.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 30, 30),
    "orange": (245, 135, 15),
    "yellow": (240, 225, 30),
    "green": (35, 165, 45),
    "cyan": (40, 215, 230),
    "blue": (30, 55, 215),
    "purple": (135, 35, 185),
    "pink": (250, 125, 195),
    "white": (250, 250, 250),
    "black": (15, 15, 15),
}

#: Shape names, single words.
SHAPES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "cross",
    "ring",
    "diamond",
    "heart",
    "hexagon",
)


@dataclass(frozen=True, eq=False)
class SceneObject:
    """One drawn shape.

    Attributes:
        colour: Colour name (a key of :data:`COLOURS`).
        shape: Shape name (one of :data:`SHAPES`).
        cell: Cell index ``0..3`` in the 2x2 grid, row-major (0 top-left, 3 bottom-right).
        center: ``(x, y)`` centre in pixels.
        radius: Outer radius in pixels.
        bbox: ``(x0, y0, x1, y1)`` pixel box of :attr:`mask` (x1, y1 exclusive).
        mask: ``[H, W]`` bool, the pixels painted with this object's colour.
    """

    colour: str
    shape: str
    cell: int
    center: tuple[float, float]
    radius: float
    bbox: tuple[int, int, int, int]
    mask: np.ndarray = field(repr=False)

    @property
    def name(self) -> str:
        """``"<colour> <shape>"``, e.g. ``"red circle"``."""
        return f"{self.colour} {self.shape}"

    @property
    def key(self) -> tuple[str, str]:
        """``(colour, shape)``."""
        return (self.colour, self.shape)
