"""Images into the 8-bit RGB that every model family's preprocessing expects.

PIL's own ``image.convert("RGB")`` clips 16-bit and 32-bit pixels at 255 (a 16-bit PNG
becomes all white) and drops transparency to whatever colour hides under it.
:func:`to_rgb` rescales high-bit-depth images to 0..255 and composites transparent pixels
over white (as an image viewer shows them). :func:`load_image` opens a file with it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["as_model_image", "load_image", "to_rgb"]

_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def _rescaled(pixels: np.ndarray, mode: str) -> np.ndarray:
    """``[H, W]`` grey levels of any range as uint8 (see :func:`to_rgb`)."""
    pixels = pixels.astype(np.float64)
    finite = pixels[np.isfinite(pixels)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if mode == "F" and lo >= 0.0 and hi <= 1.0:
        scaled = pixels * 255.0
    elif lo >= 0.0 and hi <= 255.0:
        scaled = pixels
    elif lo >= 0.0 and hi <= 65535.0:
        scaled = pixels / 257.0
    else:
        warnings.warn(
            f"The {mode!r} image has values in [{lo:g}, {hi:g}], outside 8- and 16-bit "
            "ranges; it was rescaled from its minimum (black) to its maximum (white).",
            UserWarning,
            stacklevel=3,
        )
        scaled = (pixels - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(pixels)
    return np.clip(np.nan_to_num(scaled), 0.0, 255.0).round().astype(np.uint8)


def to_rgb(image: Image.Image) -> Image.Image:
    """An 8-bit RGB copy of ``image`` (``image`` itself when it already is RGB).

    * 16-bit (``I;16``, ``I;16B``, ...) and 32-bit integer (``I``) grey: values up to 255
      are taken as 8-bit, up to 65535 as 16-bit (divided by 257); ``F`` (float) in [0, 1]
      is multiplied by 255, in [0, 255] kept. Other ranges are stretched from minimum to
      maximum, with a warning.
    * Transparency (``RGBA``, ``LA``, ``PA``, palette images with a transparent colour)
      is composited over white.
    * Everything else (``L``, ``1``, ``P``, ``CMYK``, ``YCbCr``, ...) uses PIL's conversion.

    Raises:
        TypeError: ``image`` is not a PIL image.
        ValueError: The image has no pixels (width or height 0).
    """
    if not isinstance(image, Image.Image):
        raise TypeError(f"Expected a PIL image, got {type(image).__name__}.")
    width, height = image.size
    if width == 0 or height == 0:
        raise ValueError(
            f"The image is empty ({width}x{height} pixels); pass an image with at least one "
            "pixel (check that the file was written completely)."
        )
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I") or mode == "F":
        grey = _rescaled(np.asarray(image), "F" if mode == "F" else "I")
        return Image.fromarray(grey).convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def as_model_image(image: Any) -> Any:
    """PIL images through :func:`to_rgb`; anything else (tensors) unchanged."""
    return to_rgb(image) if isinstance(image, Image.Image) else image


def load_image(path: Path | str) -> Image.Image:
    """Open an image file as 8-bit RGB (see :func:`to_rgb`).

    Raises:
        FileNotFoundError: No file at ``path``.
        IsADirectoryError: ``path`` is a folder.
        ValueError: The file is not a readable image, or an empty one.
    """
    from PIL import UnidentifiedImageError

    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"Image file not found: {file}")
    if file.is_dir():
        raise IsADirectoryError(f"{file} is a folder; pass an image file (PNG, JPEG, ...).")
    try:
        with Image.open(file) as img:
            img.load()
            return to_rgb(img).copy()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(
            f"Cannot read {file} as an image ({exc}). Use a PNG or JPEG file."
        ) from exc
