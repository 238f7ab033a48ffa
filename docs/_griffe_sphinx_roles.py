"""Griffe extension for the API reference: render the Sphinx roles used in our docstrings.

The package's docstrings follow Google style (``Args:``, ``Returns:``) but name other objects
with Sphinx roles (``:func:`approximate_crossmodal```, ``:class:`~shapiq.InteractionValues```)
and end literal-block introductions with ``::``. Markdown has neither, so this extension turns
a role into a code span (``~`` keeps the last dotted component, as in Sphinx; functions and
methods get ``()``) and ``::`` into ``:``. The indented block that follows is already a
Markdown code block. Loaded by ``mkdocs.yml`` (mkdocstrings' ``extensions`` option).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

# :role:`target`, :role:`title <target>`, :py:role:`...`
_ROLE = re.compile(r":(?:py:)?(func|meth|class|exc|data|attr|mod|obj|const|term):`([^`]+)`")
_LITERAL_INTRO = re.compile(r"(?<=\S)::[ \t]*$", re.MULTILINE)


def _role_to_code(match: re.Match[str]) -> str:
    role, target = match.group(1), match.group(2).strip()
    titled = re.fullmatch(r"(.+?)\s*<([^>]+)>", target)
    if titled:
        text = titled.group(1)
    elif target.startswith("~"):
        text = target[1:].rsplit(".", 1)[-1]
    else:
        text = target
    if role in ("func", "meth") and not text.endswith(")"):
        text += "()"
    return f"`{text}`"


def convert(text: str) -> str:
    """Sphinx roles -> Markdown code spans; ``::`` literal introductions -> ``:``."""
    return _LITERAL_INTRO.sub(":", _ROLE.sub(_role_to_code, text))


class SphinxRoles(griffe.Extension):
    """Rewrite every loaded docstring with :func:`convert`."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value)
