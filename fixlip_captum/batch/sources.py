"""Where the pairs of a dataset run come from: manifests, imagefolders, ``datasets.Dataset``.

A source is read into a :class:`PairSource`: one id, caption and image reference per row,
in the source's order. Images are read lazily, one pair at a time, by whichever process
explains the pair (:meth:`PairSource.payload` gives what that process needs), so a bad
image becomes an error row of that pair instead of stopping the run.

Accepted sources:

* a JSONL file (one JSON object per line) or a CSV file with columns ``image`` (a path
  relative to the manifest's folder, or absolute), ``text`` and optionally ``id``;
* a folder in the Hugging Face ``imagefolder`` layout: images plus ``metadata.jsonl`` or
  ``metadata.csv`` with a ``file_name`` column (relative to the folder) and a text column;
* from Python, a ``datasets.Dataset`` with an image column (decoded PIL images, undecoded
  ``{"bytes", "path"}`` dicts or paths) and a text column.

Without an id column, a pair's id is its row number in the source (``"0"``, ``"1"``, ...).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

__all__ = ["PairPayload", "PairSource", "load_pair_image", "read_source"]


@dataclass(frozen=True)
class PairPayload:
    """What a worker needs to explain one pair (picklable, small).

    Attributes:
        id: The pair's id.
        position: Row number in the source.
        image_ref: The image reference as the source gives it (a path or ``dataset[i]``).
        text: The caption.
        image: An absolute path, encoded image bytes, or a PIL image.
    """

    id: str
    position: int
    image_ref: str
    text: str
    image: str | bytes | Image.Image


class PairSource:
    """The rows of a source: ids, captions and image references, images read lazily.

    Args:
        ids: One unique id per row.
        texts: The captions.
        image_refs: The image references as written in the source.
        images: Per row, an absolute path, or a callable-free object that
            :func:`load_pair_image` reads (bytes or a PIL image); for a ``datasets.Dataset``,
            the dataset and its image column, read on demand.
        description: Shown in the run metadata (the manifest path, ...).
    """

    def __init__(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        image_refs: Sequence[str],
        images: Sequence[Any],
        description: str,
    ) -> None:
        self.ids = list(ids)
        self.texts = list(texts)
        self.image_refs = list(image_refs)
        self._images = images
        self.description = description
        seen: dict[str, int] = {}
        duplicates = []
        for i, pair_id in enumerate(self.ids):
            if pair_id in seen:
                duplicates.append(f"{pair_id!r} (rows {seen[pair_id]} and {i})")
            seen[pair_id] = i
        if duplicates:
            raise ValueError(
                f"{description}: ids must be unique, repeated: {', '.join(duplicates[:5])}"
                + (f" and {len(duplicates) - 5} more" if len(duplicates) > 5 else "")
                + ". Fix the id column, or drop it to use row numbers."
            )

    def __len__(self) -> int:
        return len(self.ids)

    def payload(self, position: int) -> PairPayload:
        """The :class:`PairPayload` of row ``position`` (reads a dataset's image cell)."""
        return PairPayload(
            self.ids[position],
            position,
            self.image_refs[position],
            self.texts[position],
            _image_cell(self._images[position]),
        )


def _image_cell(cell: Any) -> str | bytes | Image.Image:
    """A dataset image cell as a path, bytes or PIL image."""
    if isinstance(cell, (str, bytes, Image.Image)):
        return cell
    if isinstance(cell, Path):
        return str(cell)
    if isinstance(cell, dict):  # undecoded datasets.Image: {"bytes": ..., "path": ...}
        if cell.get("bytes") is not None:
            return bytes(cell["bytes"])
        if cell.get("path"):
            return str(cell["path"])
    raise ValueError(
        f"Cannot read an image from a {type(cell).__name__} cell; the image column must hold "
        "PIL images, {'bytes', 'path'} dicts or file paths."
    )


def load_pair_image(image: str | bytes | Image.Image) -> Image.Image:
    """Read a payload's image as RGB.

    Raises:
        FileNotFoundError: The image file does not exist.
        ValueError: The file or bytes are not an image PIL can read.
    """
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, bytes):
        try:
            with Image.open(io.BytesIO(image)) as img:
                return img.convert("RGB")
        except (OSError, Image.UnidentifiedImageError) as exc:
            raise ValueError(f"cannot read the image bytes as an image ({exc})") from exc
    if not image:
        raise FileNotFoundError("the row names no image")
    path = Path(image)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, Image.UnidentifiedImageError) as exc:
        raise ValueError(f"cannot read {path} as an image ({exc}); use PNG or JPEG") from exc


def _read_table(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL or CSV file."""
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    rows = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno} is not valid JSON ({exc.msg}).") from exc
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{lineno} is not a JSON object.")
            rows.append(row)
    return rows


def _require_columns(rows: list[dict[str, Any]], columns: Sequence[str], where: str) -> None:
    if not rows:
        raise ValueError(f"{where} has no rows.")
    present = set().union(*(r.keys() for r in rows))
    missing = [c for c in columns if c not in present]
    if missing:
        raise ValueError(
            f"{where} has no column {missing[0]!r} (columns: {sorted(present)}); name the "
            "columns with image_column= / text_column= (--image-column / --text-column)."
        )


def _from_rows(
    rows: list[dict[str, Any]],
    base: Path,
    image_column: str,
    text_column: str,
    id_column: str | None,
    description: str,
) -> PairSource:
    columns = [image_column, text_column] + ([id_column] if id_column else [])
    _require_columns(rows, columns, description)
    refs = ["" if r.get(image_column) is None else str(r[image_column]) for r in rows]
    texts = ["" if r.get(text_column) is None else str(r[text_column]) for r in rows]
    if id_column:
        ids = [str(r.get(id_column, "")) for r in rows]
        empty = [i for i, v in enumerate(ids) if not v]
        if empty:
            raise ValueError(f"{description}: row {empty[0]} has an empty {id_column!r}.")
    else:
        ids = [str(i) for i in range(len(rows))]
    paths = [str((base / ref).resolve()) if ref else "" for ref in refs]
    return PairSource(ids, texts, refs, paths, description)


def read_source(
    source: Any,
    *,
    image_column: str | None = None,
    text_column: str = "text",
    id_column: str | None = None,
) -> PairSource:
    """Read a manifest, an imagefolder or a ``datasets.Dataset`` (see the module docstring).

    Args:
        source: Path of a ``.jsonl``/``.json``/``.csv`` manifest or of an imagefolder, or a
            ``datasets.Dataset``.
        image_column: Image column (default ``image``; ``file_name`` in an imagefolder).
        text_column: Caption column.
        id_column: Id column; default ``id`` when the source has one, else row numbers.

    Returns:
        The :class:`PairSource`.

    Raises:
        FileNotFoundError: The path does not exist.
        ValueError: Unknown file type, missing columns, duplicate ids.
    """
    if not isinstance(source, (str, Path)):
        return _from_dataset(source, image_column or "image", text_column, id_column)
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"No dataset at {path}: pass a JSONL/CSV manifest or a folder.")
    if path.is_dir():
        for name in ("metadata.jsonl", "metadata.csv"):
            if (path / name).is_file():
                rows = _read_table(path / name)
                id_col = id_column or ("id" if rows and "id" in rows[0] else None)
                return _from_rows(
                    rows, path, image_column or "file_name", text_column, id_col, str(path / name)
                )
        raise ValueError(
            f"{path} is a folder without metadata.jsonl or metadata.csv; an imagefolder needs "
            "one, with a file_name column (image path in the folder) and a text column."
        )
    if path.suffix.lower() not in (".jsonl", ".json", ".csv"):
        raise ValueError(f"{path}: a manifest must be .jsonl or .csv (got {path.suffix!r}).")
    rows = _read_table(path)
    id_col = id_column or ("id" if rows and "id" in rows[0] else None)
    return _from_rows(rows, path.parent, image_column or "image", text_column, id_col, str(path))


def _from_dataset(
    dataset: Any, image_column: str, text_column: str, id_column: str | None
) -> PairSource:
    names = getattr(dataset, "column_names", None)
    if names is None or not hasattr(dataset, "__getitem__"):
        raise TypeError(
            "source must be a manifest path, an imagefolder path or a datasets.Dataset; got "
            f"{type(dataset).__name__}."
        )
    for column in [image_column, text_column] + ([id_column] if id_column else []):
        if column not in names:
            raise ValueError(
                f"The dataset has no column {column!r} (columns: {names}); pass "
                "image_column= / text_column= / id_column=."
            )
    id_col = id_column or ("id" if "id" in names else None)
    texts = ["" if t is None else str(t) for t in dataset[text_column]]
    n = len(texts)
    ids = [str(v) for v in dataset[id_col]] if id_col else [str(i) for i in range(n)]
    refs = [f"dataset[{i}]" for i in range(n)]
    return PairSource(ids, texts, refs, _DatasetColumn(dataset, image_column), "datasets.Dataset")


class _DatasetColumn(Sequence[Any]):
    """A dataset's image column, read one cell at a time."""

    def __init__(self, dataset: Any, column: str) -> None:
        self.dataset, self.column = dataset, column

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: Any) -> Any:
        return self.dataset[int(i)][self.column]
