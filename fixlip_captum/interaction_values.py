"""shapiq ``InteractionValues`` that carry what an explanation of an image-text pair needs.

Every explainer in this package (FIxLIP and the baselines) returns
:class:`FIxLIPInteractionValues`, a genuine subclass of :class:`shapiq.InteractionValues`,
so shapiq's plots, arithmetic and JSON saving work on it unchanged. On top of shapiq's
fields it records how the values were estimated (``p``, ``estimation_info``) and the
:class:`ExplanationContext` that plots need (patch grid, token labels, v(empty), v(full)).

Conventions:

* Players are the image patches ``0 .. n_image-1`` (row-major over the patch grid),
  then the text tokens ``n_image .. n_image+n_text-1`` (special tokens excluded).
* ``iv[()]`` is the fitted intercept. ``baseline_value`` is set to the same number,
  because shapiq replaces ``()`` by ``baseline_value`` for most index names;
  v(empty) is kept in ``context.v_empty``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from shapiq import InteractionValues

from fixlip_captum.atomic_write import atomic_path

__all__ = [
    "ExplanationContext",
    "FIxLIPInteractionValues",
    "first_order_values",
    "load_interaction_values",
    "make_interaction_values",
    "require_context",
]


@dataclass
class ExplanationContext:
    """What plots and metrics need to know about the explained pair.

    Attributes:
        n_image: Number of image players (patches).
        n_text: Number of text players (non-special tokens).
        grid: Patch grid ``(rows, cols)``; ``rows * cols == n_image``. ``None`` if unknown.
        token_labels: Readable label of each text player, length ``n_text``.
        v_empty: Value of the empty coalition (everything masked).
        v_full: Value of the grand coalition (the model's own score for the pair).
        caption: The caption as text, if known.
        image: Display image ``[H, W, 3]`` float in ``[0, 1]`` (not written to JSON).
    """

    n_image: int
    n_text: int
    grid: tuple[int, int] | None = None
    token_labels: list[str] | None = None
    v_empty: float | None = None
    v_full: float | None = None
    caption: str | None = None
    image: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.grid is not None:
            self.grid = (int(self.grid[0]), int(self.grid[1]))
            if self.grid[0] * self.grid[1] != self.n_image:
                raise ValueError(
                    f"grid {self.grid} has {self.grid[0] * self.grid[1]} cells but there are "
                    f"{self.n_image} image players; pass the patch grid of the model input."
                )
        if self.token_labels is not None and len(self.token_labels) != self.n_text:
            raise ValueError(
                f"{len(self.token_labels)} token labels given for {self.n_text} text players."
            )

    @property
    def n_players(self) -> int:
        return self.n_image + self.n_text

    def patch_grid(self) -> tuple[int, int]:
        """The patch grid ``(rows, cols)``, or a clear error if it is unknown."""
        if self.grid is None:
            raise ValueError(
                "The explanation's context has no patch grid; set context.grid = (rows, cols) "
                "to plot or map image players."
            )
        return self.grid

    def player_label(self, player: int) -> str:
        """Readable label: ``"patch (r, c)"`` for image players, the token for text players."""
        if player < self.n_image:
            if self.grid is None:
                return f"patch {player}"
            return f"patch ({player // self.grid[1]}, {player % self.grid[1]})"
        j = player - self.n_image
        return self.token_labels[j] if self.token_labels is not None else f"token {j}"

    def table_label(self, player: int) -> str:
        """:meth:`player_label`, with a token's position among the text players
        (``"a #3"``), so that repeated words can be told apart in tables."""
        label = self.player_label(player)
        return label if player < self.n_image else f"{label} #{player - self.n_image + 1}"

    def to_json_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("image")
        return data


class FIxLIPInteractionValues(InteractionValues):
    """A :class:`shapiq.InteractionValues` with estimation settings and plotting context.

    Extra attributes:
        p: Keep-probability of the weighted Banzhaf index (``None`` for other indices).
        estimation_info: Settings and counts of the estimator (method, budget actually
            used, number of image and text masks, ...).
        context: :class:`ExplanationContext` or ``None``.
    """

    p: float | None
    estimation_info: dict[str, Any]
    context: ExplanationContext | None

    # numpy scalars on the left (``np.float64(2) * iv``) defer to __rmul__.
    __array_ufunc__ = None

    def first_order(self) -> np.ndarray:
        """First-order view ``phi_i = e_i + p * sum_j e_ij``; see :func:`first_order_values`."""
        return first_order_values(self)

    # ------------------------------------------------------------------ arithmetic
    # shapiq's operators return a plain InteractionValues (no p, no context) and add
    # explanations of different players; these keep the subclass and refuse what has no
    # meaning. The explanation of a game is linear in the game: ``c * iv`` explains
    # ``c * v`` and ``iv1 + iv2`` explains ``v1 + v2``, so v(empty), v(full) scale and add.

    def _terms_values(self) -> dict[tuple[int, ...], float]:
        stored = self.values  # shapiq rebuilds .values on every access: read it once
        return {t: float(stored[k]) for t, k in self.interaction_lookup.items()}

    def _derived(
        self,
        terms: dict[tuple[int, ...], float],
        context: ExplanationContext | None,
        info: dict[str, Any],
        estimated: bool,
        budget: int | None,
    ) -> FIxLIPInteractionValues:
        return make_interaction_values(
            list(terms.values()),
            list(terms),
            n_players=self.n_players,
            index=self.index,
            max_order=max(self.max_order, *(len(t) for t in terms)),
            p=self.p,
            estimated=estimated,
            estimation_budget=budget,
            estimation_info=info,
            context=context,
        )

    def _scaled(self, factor: float) -> FIxLIPInteractionValues:
        terms = {t: v * factor for t, v in self._terms_values().items()}
        ctx = self.context
        if ctx is not None:
            ctx = replace(
                ctx,
                v_empty=None if ctx.v_empty is None else ctx.v_empty * factor,
                v_full=None if ctx.v_full is None else ctx.v_full * factor,
            )
        info = {**self.estimation_info, "scaled_by": factor}
        return self._derived(terms, ctx, info, self.estimated, self.estimation_budget)

    def __mul__(self, other: object) -> FIxLIPInteractionValues:
        return self._scaled(_scalar(other, "multiply"))

    def __rmul__(self, other: object) -> FIxLIPInteractionValues:
        return self._scaled(_scalar(other, "multiply"))

    def __truediv__(self, other: object) -> FIxLIPInteractionValues:
        divisor = _scalar(other, "divide")
        if divisor == 0:
            raise ZeroDivisionError("Cannot divide an explanation by 0.")
        return self._scaled(1.0 / divisor)

    def __neg__(self) -> FIxLIPInteractionValues:
        return self._scaled(-1.0)

    def __add__(self, other: object) -> FIxLIPInteractionValues:
        if not isinstance(other, InteractionValues):
            if _is_zero(other):  # sum([iv1, iv2]) starts from 0
                return self._scaled(1.0)
            raise TypeError(
                f"Cannot add {type(other).__name__} to an explanation: add another explanation "
                "of the same players (iv1 + iv2), or scale it (iv * 2, iv / 2)."
            )
        _check_compatible(self, other)
        terms = self._terms_values()
        for t, v in _terms_of(other).items():
            terms[t] = terms.get(t, 0.0) + v
        other_info = dict(getattr(other, "estimation_info", {}) or {})
        info = {"sum_of": [dict(self.estimation_info), other_info]}
        context = _summed_context(self.context, getattr(other, "context", None))
        return self._derived(terms, context, info, self.estimated or other.estimated, None)

    def __radd__(self, other: object) -> FIxLIPInteractionValues:
        return self.__add__(other)

    def __sub__(self, other: object) -> FIxLIPInteractionValues:
        if isinstance(other, InteractionValues):
            return self.__add__(-_as_fixlip(other))
        return self.__add__(other)  # only 0 is accepted

    def __rsub__(self, other: object) -> FIxLIPInteractionValues:
        return (-self).__add__(other)

    def to_json_file(
        self,
        path: Path | str,
        *,
        desc: str | None = None,
        created_from: object | None = None,
        **kwargs: Any,
    ) -> None:
        """Write shapiq's JSON format; our settings go into its ``parameters`` block."""
        params = {
            "fixlip_p": self.p,
            "fixlip_estimation_info": _jsonable(self.estimation_info),
            "fixlip_context": None if self.context is None else self.context.to_json_dict(),
        }
        params.update(kwargs)
        # Written under a temporary name and renamed: an interruption leaves no half file.
        with atomic_path(path) as tmp:
            super().to_json_file(tmp, desc=desc, created_from=created_from, **params)

    def save(self, path: Path | str, **_: Any) -> None:
        """Save as shapiq JSON (loadable with ``InteractionValues.load`` or
        :func:`load_interaction_values`, which also restores ``p`` and the context)."""
        path = Path(path)
        if not path.name.endswith(".json"):
            raise ValueError(f"Save explanations as JSON: {path} does not end with '.json'.")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.to_json_file(path)

    @classmethod
    def load(cls, path: Path | str) -> FIxLIPInteractionValues:
        return load_interaction_values(path)

    def to_html(self, path: Path | str, **kwargs: Any) -> Path:
        """Write the interactive viewer (one self-contained HTML file) and return its path.

        See :func:`fixlip_captum.plot.write_viewer` for ``kwargs`` (``title``, ``k``).
        """
        from fixlip_captum.plot.viewer import write_viewer

        return write_viewer(self, path, **kwargs)

    def _repr_html_(self) -> str | None:
        """Notebooks show the interactive viewer (plain ``repr`` without a patch grid)."""
        if self.context is None or self.context.grid is None:
            return None
        from fixlip_captum.plot.viewer import show

        return show(self)._repr_html_()


def _scalar(other: object, verb: str) -> float:
    if isinstance(other, (bool, np.bool_)) or not isinstance(other, (int, float, np.number)):
        raise TypeError(
            f"Can only {verb} an explanation by a real number, got {type(other).__name__}."
        )
    value = float(other)
    if not np.isfinite(value):
        raise ValueError(f"Cannot {verb} an explanation by {value}.")
    return value


def _is_zero(other: object) -> bool:
    return (
        isinstance(other, (int, float, np.number))
        and not isinstance(other, bool)
        and (float(other) == 0.0)
    )


def _terms_of(iv: InteractionValues) -> dict[tuple[int, ...], float]:
    stored = iv.values
    return {t: float(stored[k]) for t, k in iv.interaction_lookup.items()}


def _as_fixlip(iv: InteractionValues) -> FIxLIPInteractionValues:
    if isinstance(iv, FIxLIPInteractionValues):
        return iv
    terms = _terms_of(iv)
    return make_interaction_values(
        list(terms.values()),
        list(terms),
        n_players=iv.n_players,
        index=iv.index,
        max_order=iv.max_order,
        estimated=iv.estimated,
        estimation_budget=iv.estimation_budget,
    )


def _check_compatible(a: FIxLIPInteractionValues, b: InteractionValues) -> None:
    """Refuse to combine explanations of different players, indices or p."""
    if a.n_players != b.n_players:
        raise ValueError(
            f"Cannot combine explanations of {a.n_players} and {b.n_players} players: their "
            "players differ (another image grid or caption length). Combine explanations "
            "of the same players only."
        )
    ca, cb = a.context, getattr(b, "context", None)
    if ca is not None and cb is not None and (ca.n_image, ca.n_text) != (cb.n_image, cb.n_text):
        raise ValueError(
            f"Cannot combine an explanation of {ca.n_image} image + {ca.n_text} text players "
            f"with one of {cb.n_image} + {cb.n_text}: their players differ."
        )
    if a.index != b.index:
        raise ValueError(
            f"Cannot combine explanations of different indices ({a.index} and {b.index})."
        )
    pb = getattr(b, "p", None)
    if a.p is not None and pb is not None and not np.isclose(a.p, pb):
        raise ValueError(f"Cannot combine explanations with different p ({a.p} and {pb}).")


def _summed_context(
    a: ExplanationContext | None, b: ExplanationContext | None
) -> ExplanationContext | None:
    """The context of ``iv_a + iv_b``: shared fields kept, v(empty)/v(full) added, fields
    that differ (another caption, another image) dropped."""
    if a is None or b is None:
        return a if b is None else b
    same_image = (
        a.image is not None
        and b.image is not None
        and a.image.shape == b.image.shape
        and bool(np.array_equal(a.image, b.image))
    )

    def added(x: float | None, y: float | None) -> float | None:
        return None if x is None or y is None else x + y

    return ExplanationContext(
        n_image=a.n_image,
        n_text=a.n_text,
        grid=a.grid if a.grid == b.grid else None,
        token_labels=a.token_labels if a.token_labels == b.token_labels else None,
        v_empty=added(a.v_empty, b.v_empty),
        v_full=added(a.v_full, b.v_full),
        caption=a.caption if a.caption == b.caption else None,
        image=a.image if same_image else None,
    )


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def make_interaction_values(
    values: np.ndarray | Sequence[float],
    terms: Sequence[tuple[int, ...]],
    *,
    n_players: int,
    index: str,
    max_order: int,
    p: float | None = None,
    estimated: bool = True,
    estimation_budget: int | None = None,
    estimation_info: Mapping[str, Any] | None = None,
    context: ExplanationContext | None = None,
) -> FIxLIPInteractionValues:
    """Build a :class:`FIxLIPInteractionValues` from a value vector and its terms.

    Args:
        values: Values ``[len(terms)]``; ``values[k]`` belongs to ``terms[k]``.
        terms: Sorted player tuples, e.g. ``()``, ``(3,)``, ``(3, 57)``. Terms not listed
            are absent (and read as 0 by shapiq).
        n_players: Total number of players.
        index: Index name. shapiq's own names (``"FBII"``, ``"FSII"``, ``"SV"``, ...) are
            kept; any other name (``"FWBII"``, ``"GradECLIP"``, ...) is stored as given
            without shapiq's warning. Do not use ``-`` in names: shapiq reads it as an
            aggregated index.
        max_order: Highest order present.
        p: Keep-probability for weighted Banzhaf indices.
        estimated: Whether the values are estimates.
        estimation_budget: Number of value-function evaluations (or pairs) used.
        estimation_info: Extra settings to record.
        context: Plotting/metric context.

    Returns:
        The interaction values; ``iv[()]`` is ``values`` at term ``()`` (0 if absent).
    """
    vals = np.asarray(values, dtype=float).reshape(-1)
    if vals.shape[0] != len(terms):
        raise ValueError(f"{vals.shape[0]} values for {len(terms)} terms.")
    if not np.all(np.isfinite(vals)):
        raise ValueError("Interaction values contain NaN or infinity.")
    lookup: dict[tuple[int, ...], int] = {}
    for k, term in enumerate(terms):
        key = tuple(sorted(int(i) for i in term))
        if key in lookup:
            raise ValueError(f"Term {key} appears twice.")
        if any(i < 0 or i >= n_players for i in key):
            raise ValueError(f"Term {key} names a player outside 0..{n_players - 1}.")
        lookup[key] = k
    if () not in lookup:
        lookup[()] = len(vals)
        vals = np.append(vals, 0.0)
    intercept = float(vals[lookup[()]])
    if context is not None and context.n_players != n_players:
        raise ValueError(
            f"context describes {context.n_players} players but n_players={n_players}."
        )
    with warnings.catch_warnings():
        # shapiq warns on index names it does not know; we keep ours deliberately.
        warnings.simplefilter("ignore", UserWarning)
        iv = FIxLIPInteractionValues(
            vals,
            index=index,
            max_order=max_order,
            n_players=n_players,
            min_order=0,
            interaction_lookup=lookup,
            estimated=estimated,
            estimation_budget=estimation_budget,
            # Equal to the intercept, so shapiq never overwrites ``()`` with it.
            baseline_value=intercept,
        )
    iv.p = p
    iv.estimation_info = dict(estimation_info or {})
    iv.context = context
    return iv


def load_interaction_values(path: Path | str) -> FIxLIPInteractionValues:
    """Load a JSON file written by :meth:`FIxLIPInteractionValues.save` (or by shapiq).

    Restores ``p``, ``estimation_info`` and ``context`` (without the display image).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No explanation file at {path}.")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; pass the explanation's .json file.")
    try:
        with path.open(encoding="utf-8") as fh:
            data = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"{path} is not a complete JSON file ({exc}); it was probably not written to the "
            "end (an interrupted run?). Explain the pair again to rewrite it."
        ) from exc
    missing = [k for k in ("metadata", "data") if not isinstance(data, dict) or k not in data]
    if missing:
        raise ValueError(
            f"{path} is JSON but not an explanation saved by fixlip-captum or shapiq (no "
            f"{' / '.join(repr(k) for k in missing)} block); pass a file written by iv.save() "
            "or `fixlip explain`."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            base = InteractionValues.from_json_file(path)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ValueError(
            f"{path} looks like a shapiq explanation but cannot be read "
            f"({type(exc).__name__}: {exc}); it may be damaged or from an incompatible "
            "version. Explain the pair again to rewrite it."
        ) from exc
    params = data.get("parameters") or {}
    ctx_dict = params.get("fixlip_context")
    context = None
    if ctx_dict:
        if ctx_dict.get("grid") is not None:
            ctx_dict["grid"] = tuple(ctx_dict["grid"])
        try:
            context = ExplanationContext(**ctx_dict)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{path} has a damaged fixlip context ({exc}); explain the pair again."
            ) from exc
    terms = list(base.interaction_lookup.keys())
    # shapiq's ``values`` property builds a new array on every access: read it once.
    base_values = base.values
    values = np.array([base_values[base.interaction_lookup[t]] for t in terms])
    return make_interaction_values(
        values,
        terms,
        n_players=base.n_players,
        index=base.index,
        max_order=base.max_order,
        p=params.get("fixlip_p"),
        estimated=base.estimated,
        estimation_budget=base.estimation_budget,
        estimation_info=params.get("fixlip_estimation_info") or {},
        context=context,
    )


def require_context(iv: InteractionValues) -> ExplanationContext:
    """The explanation's :class:`ExplanationContext`, or a clear error if it has none.

    Plots, metrics and reports need the context (patch grid, token labels, v(empty));
    explanations from :class:`~fixlip_captum.FIxLIP`, the methods of
    :mod:`fixlip_captum.methods` and :func:`load_interaction_values` carry one.
    """
    ctx = getattr(iv, "context", None)
    if ctx is None:
        raise ValueError(
            "This explanation has no ExplanationContext (patch grid, token labels); build it "
            "with fixlip_captum.make_interaction_values(..., context=ExplanationContext(...)) "
            "or explain with the FIxLIP class, which attaches one."
        )
    return ctx


def first_order_values(iv: InteractionValues, p: float | None = None) -> np.ndarray:
    """Exact weighted Banzhaf values of the fitted order-2 surrogate.

    ``phi_i = e_i + p * sum_j e_ij``: the expected marginal contribution of player i to
    ``sum_T e_T 1[T subset S]`` when every other player is kept with probability p.
    With p = 0.5 this is also the surrogate's Shapley value (for order <= 2).

    Args:
        iv: Interaction values of order <= 2.
        p: Keep-probability; defaults to ``iv.p``, else 0.5.

    Returns:
        ``[n_players]`` array.
    """
    if p is None:
        p = getattr(iv, "p", None)
    if p is None:
        p = 0.5
    if iv.max_order > 2:
        raise ValueError(
            "first_order_values is defined for explanations of order <= 2; "
            f"this one has max_order={iv.max_order}."
        )
    phi = np.zeros(iv.n_players)
    # shapiq's ``values`` property builds a new array on every access: read it once.
    values = iv.values
    for term, k in iv.interaction_lookup.items():
        v = float(values[k])
        if len(term) == 1:
            phi[term[0]] += v
        elif len(term) == 2:
            phi[term[0]] += p * v
            phi[term[1]] += p * v
    return phi
