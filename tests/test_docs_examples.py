"""Every ```python block in README.md and docs/**/*.md runs, page by page, on the offline model.

Blocks of one page run in order in one namespace (as a reader would paste them into one
session), in a temporary working directory, with matplotlib's non-interactive backend. A
block preceded (blank lines aside) by ``<!-- skip: REASON -->`` is not run; REASON must say
why (e.g. "needs pretrained weights"). ``docs/dev/`` holds working notes, not the site, and
is not scanned.
"""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP_MARK = re.compile(r"^\s*<!--\s*skip:\s*(?P<reason>.*?)\s*-->\s*$")
FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\s`]*)")
PYTHON_INFOS = {"python", "py", "python3"}


@dataclass(frozen=True)
class CodeBlock:
    """One fenced code block: its language, source (dedented), first line (1-based) and
    the reason it is skipped (``None`` = run it)."""

    language: str
    source: str
    line: int
    skip: str | None


def extract_blocks(markdown: str) -> list[CodeBlock]:
    """All fenced code blocks of a Markdown text, in order.

    A fence is three or more backticks or tildes, optionally indented (blocks inside
    admonitions or lists); it is closed by a fence of the same character, at least as long.
    An unclosed fence raises ``ValueError`` (Markdown would swallow the rest of the page).
    """
    lines = markdown.splitlines()
    blocks: list[CodeBlock] = []
    k = 0
    while k < len(lines):
        match = FENCE_OPEN.match(lines[k])
        if not match:
            k += 1
            continue
        indent, fence = match.group("indent"), match.group("fence")
        language = match.group("info").lower()
        start = k
        prev = k - 1
        while prev >= 0 and not lines[prev].strip():
            prev -= 1
        skip_match = SKIP_MARK.match(lines[prev]) if prev >= 0 else None
        close = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        body: list[str] = []
        k += 1
        while k < len(lines) and not close.match(lines[k]):
            line = lines[k]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            k += 1
        if k == len(lines):
            raise ValueError(f"code fence opened on line {start + 1} is never closed")
        k += 1
        blocks.append(
            CodeBlock(
                language=language,
                source="\n".join(body) + "\n",
                line=start + 2,
                skip=None if skip_match is None else skip_match.group("reason"),
            )
        )
    return blocks


def doc_pages() -> list[Path]:
    pages = [ROOT / "README.md"]
    pages += sorted(
        p for p in (ROOT / "docs").rglob("*.md") if "dev" not in p.relative_to(ROOT / "docs").parts
    )
    return pages


def python_blocks(page: Path) -> list[CodeBlock]:
    return [b for b in extract_blocks(page.read_text()) if b.language in PYTHON_INFOS]


PAGES = [p for p in doc_pages() if python_blocks(p)]


# --------------------------------------------------------------------------- the parser


def test_extract_blocks_finds_fences_skip_marks_and_indented_blocks() -> None:
    text = "\n".join(
        [
            "# Title",  # 1
            "```python",  # 2
            "x = 1",  # 3
            "```",  # 4
            "<!-- skip: needs pretrained weights -->",  # 5
            "",  # 6
            "```python",  # 7
            "download()",  # 8
            "```",  # 9
            "!!! note",  # 10
            "    ````py",  # 11
            "    y = [",  # 12
            "        2]",  # 13
            "    ```",  # 14 (shorter fence: content, not a close)
            "    ````",  # 15
            "~~~bash",  # 16
            "fixlip demo",  # 17
            "~~~",  # 18
        ]
    )
    blocks = extract_blocks(text)
    assert [(b.language, b.line, b.skip) for b in blocks] == [
        ("python", 3, None),
        ("python", 8, "needs pretrained weights"),
        ("py", 12, None),
        ("bash", 17, None),
    ]
    assert blocks[0].source == "x = 1\n"
    assert blocks[2].source == "y = [\n    2]\n```\n"
    with pytest.raises(ValueError, match="line 2 is never closed"):
        extract_blocks("text\n```python\nx = 1\n")


def test_docs_have_executed_examples() -> None:
    # Guards against the checker silently running nothing (a renamed folder, a parser bug).
    runnable = [b for p in PAGES for b in python_blocks(p) if b.skip is None]
    assert len(PAGES) >= 5 and len(runnable) >= 15, (len(PAGES), len(runnable))


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_skip_marks_give_a_reason(page: Path) -> None:
    for block in python_blocks(page):
        if block.skip is not None:
            assert len(block.skip) >= 10, f"{page.name}:{block.line}: say why it is skipped"


def test_griffe_extension_renders_sphinx_roles_as_code() -> None:
    # docs/_griffe_sphinx_roles.py rewrites the API reference's docstrings.
    pytest.importorskip("griffe")
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_griffe_sphinx_roles", ROOT / "docs" / "_griffe_sphinx_roles.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = (
        "See :func:`~fixlip_captum.estimators.approximate_crossmodal` and "
        ":class:`shapiq.InteractionValues`, :py:meth:`FIxLIP.attribute`, "
        ":data:`METHODS <fixlip_captum.methods.METHODS>`.\n\nExample::\n\n    x = 1\n"
    )
    assert module.convert(text) == (
        "See `approximate_crossmodal()` and `shapiq.InteractionValues`, "
        "`FIxLIP.attribute()`, `METHODS`.\n\nExample:\n\n    x = 1\n"
    )
    assert module.convert("a :: b") == "a :: b"  # only a trailing `::` opens a literal block


# --------------------------------------------------------------------------- the examples


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_page_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict[str, object] = {"__name__": "__docs__"}
    rel = page.relative_to(ROOT)
    ran = 0
    try:
        for block in python_blocks(page):
            if block.skip is not None:
                continue
            code = compile(block.source, f"{rel}:{block.line}", "exec")
            error = None
            try:
                exec(code, namespace)
            except Exception:
                error = traceback.format_exc()
            if error is not None:
                pytest.fail(f"the example at {rel}:{block.line} failed:\n{error}", pytrace=False)
            ran += 1
    finally:
        plt.close("all")
    if ran == 0:
        pytest.skip(f"{rel}: every example is marked skip")


# ------------------------------------------------- examples that need downloaded weights

WEIGHTS_REASON = "needs pretrained weights"
DOWNLOAD_BLOCKS = [
    (page, block)
    for page in PAGES
    for block in python_blocks(page)
    if block.skip is not None and block.skip.startswith(WEIGHTS_REASON)
]


def _stand_ins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace only the calls that download weights by tiny random models of the same
    classes (tests/_models.py); everything else in the example runs as written."""
    import open_clip
    import transformers
    from _models import (
        hf_clip_processor,
        open_clip_bpe_tokenizer,
        tiny_hf_clip,
        tiny_open_clip_clip,
    )

    def create_model_and_transforms(name: str, pretrained: str | None = None, **kwargs):
        preprocess = open_clip.image_transform(32, is_train=False)
        return tiny_open_clip_clip(), preprocess, preprocess

    monkeypatch.setattr(open_clip, "create_model_and_transforms", create_model_and_transforms)
    monkeypatch.setattr(open_clip, "get_tokenizer", lambda name, **kw: open_clip_bpe_tokenizer())
    monkeypatch.setattr(
        transformers.CLIPModel, "from_pretrained", classmethod(lambda cls, *a, **kw: tiny_hf_clip())
    )
    monkeypatch.setattr(
        transformers.CLIPProcessor,
        "from_pretrained",
        classmethod(lambda cls, *a, **kw: hf_clip_processor()),
    )


@pytest.mark.parametrize(
    ("page", "block"),
    DOWNLOAD_BLOCKS,
    ids=[f"{p.relative_to(ROOT)}:{b.line}" for p, b in DOWNLOAD_BLOCKS],
)
def test_download_examples_run_with_tiny_stand_ins(
    page: Path, block: CodeBlock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documented calls for downloaded models are the real API: run each such block
    with the weight loading swapped for a tiny random model (4 x 4 patches) and check that
    it explains the pair over the expected players."""
    import numpy as np
    from PIL import Image

    _stand_ins(monkeypatch)
    monkeypatch.chdir(tmp_path)
    pixels = np.random.default_rng(0).integers(0, 256, size=(48, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save("cat.jpg")  # the image file the examples open
    namespace: dict[str, object] = {"__name__": "__docs__"}
    exec(compile(block.source, f"{page.relative_to(ROOT)}:{block.line}", "exec"), namespace)
    iv = namespace["iv"]
    ctx = iv.context  # type: ignore[attr-defined]
    assert ctx.grid == (4, 4) and ctx.token_labels is not None
    assert [t.strip().lower().removesuffix("</w>") for t in ctx.token_labels] == [
        "a",
        "photo",
        "of",
        "a",
        "cat",
    ]
    assert iv.n_players == 16 + 5  # type: ignore[attr-defined]
