"""The settings of an explanation, checked once, and the sampling plan derived from them once.

:class:`Settings` is built (and validated) where a user's arguments enter: the
:class:`~fixlip_captum.FIxLIP` call and the public estimator functions. The plan functions
(:func:`plan_crossmodal`, :func:`plan_joint`) turn settings and player counts into a
:class:`SamplingPlan`: the fitted terms, the budget, the number of image and text masks, the
identifiable minimum and the hint shown when a budget is below it. The estimators take a plan
and trust it; :meth:`SamplingPlan.info` is what ``estimation_info`` records.

One default budget rule serves every path (:func:`default_budget`): ``2^17`` evaluations,
or the next power of two above twice the identifiable minimum when that is larger; on the
cross-modal path the image side never gets more masks than it gets for a caption of
:data:`REFERENCE_TOKENS` tokens, so a short caption costs no more than a long one.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ._validation import check_index, check_max_order, check_n_players, check_p
from .solvers import NotIdentifiableError, interaction_terms
from .solvers.terms import PairsSpec, split_terms

__all__ = [
    "DEFAULT_BUDGET",
    "MAX_BUDGET",
    "MAX_EXACT_PLAYERS",
    "MODES",
    "REFERENCE_TOKENS",
    "SamplingPlan",
    "Settings",
    "crossmodal_split",
    "default_budget",
    "minimum_budget",
    "plan_crossmodal",
    "plan_joint",
]

DEFAULT_BUDGET = 2**17
# Above this many evaluations (or image-text pairs) the masks alone fill tens of GB and a
# run takes days; the published runs used 2^21. Smaller games are exact at 2^n anyway.
MAX_BUDGET = 2**30
MAX_EXACT_PLAYERS = 20
# The default cross-modal split gives the image side what a caption of this many tokens gets.
REFERENCE_TOKENS = 10
_MAX_SEED = 2**63 - 1
MODE_INDEX = {"banzhaf": "FWBII", "shapley": "FSII"}
MODES = tuple(MODE_INDEX)


def _integral(value: Any, name: str) -> int:
    """An ``int`` from any integral number (``int``, numpy integer, ``4096.0``); no bools."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} ({value!r}).")
    if isinstance(value, numbers.Integral):
        return int(value)
    as_float = float(value)
    if not as_float.is_integer():
        raise TypeError(f"{name} must be an integer (a whole number), got {value!r}.")
    return int(as_float)


def check_budget(budget: Any, name: str = "budget") -> int:
    """A positive integral budget of at most :data:`MAX_BUDGET`."""
    value = _integral(budget, name)
    if value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value}.")
    if value > MAX_BUDGET:
        raise ValueError(
            f"{name}={value} is beyond the maximum meaningful budget 2^30 = {MAX_BUDGET}: the "
            "masks alone would not fit in memory and the model would run for days (the "
            "published results use 2^21; a game of n players is exact at 2^n). Use a budget "
            "of at most 2^30."
        )
    return value


def check_seed(seed: Any) -> int | None:
    """``None`` or an integral seed in ``0..2^63-1``."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            f"seed must be None or an integer in 0..2^63-1, got {type(seed).__name__} "
            f"({seed!r}); e.g. seed=0."
        )
    value = int(seed)
    if not 0 <= value <= _MAX_SEED:
        raise ValueError(f"seed must lie in 0..2^63-1 (a 64-bit seed); got {value}.")
    return value


def _check_mode(mode: str) -> str:
    if mode not in MODE_INDEX:
        raise ValueError(
            f"mode must be 'banzhaf' (faithful weighted Banzhaf, cross-modal estimator) or "
            f"'shapley' (faithful Shapley, model-agnostic estimator); got {mode!r}."
        )
    return mode


def _check_pairs(pairs: Any) -> PairsSpec:
    if isinstance(pairs, str):
        if pairs not in ("all", "crossmodal"):
            raise ValueError(
                f"pairs must be 'all', 'crossmodal' or a list of player ids; got {pairs!r}."
            )
        return pairs
    if not isinstance(pairs, Sequence) or not all(
        isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in pairs
    ):
        raise TypeError(
            f"pairs must be 'all', 'crossmodal' or a list of player ids; got {pairs!r}."
        )
    return tuple(sorted({int(i) for i in pairs}))


@dataclass(frozen=True)
class Settings:
    """What an explanation is, validated once where the user's arguments enter.

    Attributes:
        index: ``"FWBII"`` or ``"FSII"``.
        p: Keep-probability in (0, 1) for FWBII; ``None`` for FSII (it has no ``p``).
        max_order: Highest interaction order (1, 2 or 3).
        pairs: ``"all"``, ``"crossmodal"`` or a sorted tuple of player ids.
        seed: Seed of the mask sampler (``None`` = fresh entropy).
        budget: Evaluations (joint) or image-text pairs (cross-modal); ``None`` = the default
            rule of :func:`default_budget`.
        image_masking: ``"mean"`` or ``"drop"`` (dual encoders; ``None`` elsewhere).
        value: ``"logit"`` or ``"cosine"`` (dual encoders; ``None`` elsewhere).
    """

    index: str = "FWBII"
    p: float | None = 0.5
    max_order: int = 2
    pairs: PairsSpec = "all"
    seed: int | None = None
    budget: int | None = None
    image_masking: str | None = None
    value: str | None = None

    @classmethod
    def create(
        cls,
        *,
        index: str | None = None,
        mode: str | None = None,
        p: Any = None,
        max_order: Any = 2,
        pairs: Any = "all",
        seed: Any = None,
        budget: Any = None,
        image_masking: str | None = None,
        value: str | None = None,
    ) -> Settings:
        """Validate user arguments (give ``index`` or ``mode``, not both).

        ``p=None`` means 0.5 for FWBII. FSII's weights have no keep-probability (its
        first-order view uses 1/2), so it takes ``p=None`` or ``p=0.5`` and refuses others.
        """
        if mode is not None:
            if index is not None:
                raise ValueError("Give index or mode, not both.")
            index = MODE_INDEX[_check_mode(mode)]
        index = check_index("FWBII" if index is None else index)
        if index == "FSII":
            if p is not None and check_p(p) != 0.5:
                raise ValueError(
                    f"p={p} applies to the weighted Banzhaf index only (mode='banzhaf' / "
                    "index='FWBII'); the Shapley index (mode='shapley' / index='FSII') has "
                    "no keep-probability. Leave p unset (or 0.5)."
                )
            checked_p = None
        else:
            checked_p = check_p(0.5 if p is None else p)
        if isinstance(max_order, bool) or not isinstance(max_order, numbers.Integral):
            raise TypeError(
                f"max_order must be an int (1, 2 or 3), got {type(max_order).__name__}."
            )
        return cls(
            index=index,
            p=checked_p,
            max_order=check_max_order(int(max_order), 10**9),
            pairs=_check_pairs(pairs),
            seed=check_seed(seed),
            budget=None if budget is None else check_budget(budget),
            image_masking=image_masking,
            value=value,
        )

    @property
    def basis_p(self) -> float:
        """Centring probability of the basis (``p``, or 1/2 for FSII)."""
        return 0.5 if self.p is None else self.p

    @property
    def index_name(self) -> str:
        """The name stored in the InteractionValues: shapiq's ``FBII`` when it applies."""
        return "FBII" if self.index == "FWBII" and self.p == 0.5 else self.index

    def describe(self) -> dict[str, Any]:
        """JSON-friendly record for ``estimation_info``."""
        out: dict[str, Any] = {
            "index": self.index,
            "p": self.p,
            "max_order": self.max_order,
            "pairs": self.pairs if isinstance(self.pairs, str) else list(self.pairs),
            "seed": self.seed,
        }
        if self.image_masking is not None:
            out["image_masking"] = self.image_masking
        if self.value is not None:
            out["value"] = self.value
        return out


Term = tuple[int, ...]


def _exhaustive(n: int) -> int | None:
    """``2^n`` when it is a meaningful count (else ``None``: never enumerable)."""
    return 2**n if n < 62 else None


def _cap(count: int, n: int) -> int:
    full = _exhaustive(n)
    return count if full is None else min(full, count)


@dataclass(frozen=True)
class SamplingPlan:
    """Everything an estimator needs, computed once from :class:`Settings` and the game size.

    Attributes:
        settings: The validated settings.
        design: ``"crossmodal"`` (image masks x text masks) or ``"joint"``.
        n_players: All players ``n``.
        n_image: Image players (``None`` for a joint game without modalities).
        terms: The fitted terms (closed under subsets, starting with ``()``).
        budget: Evaluations (joint) or image-text pairs (cross-modal) to spend.
        m_image: Image masks (cross-modal).
        m_text: Text masks (cross-modal).
        image_features: Distinct image parts of the terms (cross-modal).
        text_features: Distinct text parts of the terms (cross-modal).
        minimum: The identifiable minimum budget.
        minimum_image: Fewest image masks (cross-modal).
        minimum_text: Fewest text masks (cross-modal).
        hint: What to do when the budget is below the minimum.
        budget_rule: ``"given"`` or ``"default"``.
    """

    settings: Settings
    design: str
    n_players: int
    n_image: int | None
    terms: tuple[Term, ...]
    budget: int
    minimum: int
    hint: str
    budget_rule: str
    m_image: int = 0
    m_text: int = 0
    image_features: tuple[Term, ...] = field(default=())
    text_features: tuple[Term, ...] = field(default=())
    minimum_image: int = 0
    minimum_text: int = 0

    @property
    def n_text(self) -> int:
        return self.n_players - (self.n_image or 0)

    @property
    def exhaustive(self) -> bool:
        """Joint design: the budget covers all ``2^n`` coalitions (the result is exact)."""
        full = _exhaustive(self.n_players)
        return self.design == "joint" and full is not None and self.budget >= full

    def info(self) -> dict[str, Any]:
        """The plan as recorded in ``estimation_info``."""
        out: dict[str, Any] = {
            **self.settings.describe(),
            "design": self.design,
            "n_terms": len(self.terms),
            "requested_budget": self.settings.budget,
            "budget_rule": self.budget_rule,
            "minimum_budget": self.minimum,
        }
        if self.design == "crossmodal":
            out.update(
                m_image=self.m_image,
                m_text=self.m_text,
                minimum_image_masks=self.minimum_image,
                minimum_text_masks=self.minimum_text,
            )
        return out


def _terms(settings: Settings, n: int, n_image: int | None) -> list[Term]:
    check_max_order(settings.max_order, n)
    return interaction_terms(n, settings.max_order, settings.pairs, n_image=n_image)


def _pow2_above(x: int) -> int:
    return 2 ** math.ceil(math.log2(max(x, 1)))


def default_budget(minimum: int) -> int:
    """The default rule: ``2^17``, or the next power of two above ``2 * minimum``."""
    return max(DEFAULT_BUDGET, _pow2_above(2 * minimum))


def crossmodal_split(
    budget: int, n_image: int, n_text: int, n_image_features: int, n_text_features: int
) -> tuple[int, int]:
    """Split of ``budget`` pairs into ``m_image x m_text`` masks, identifiable whenever
    ``budget >= min_I * min_T`` (``min = min(2^n, F)``, ``F`` the distinct parts).

    With a 25 % margin ``need = min(2^n, ceil(1.25 F))``:

    1. ``m_text = min(2^n_T, max(4, ceil(sqrt(budget) n_T / n_I)))`` — the published rule
       (captions have fewer players than images, so fewer text masks), raised to ``need_T``;
    2. if ``budget // m_text < need_I``, text masks are traded for image masks:
       ``m_text = max(min_T, budget // need_I)``;
    3. ``m_text`` is clamped to ``[min_T, budget // min_I]`` — so ``m_image >= min_I``;
    4. if ``m_text`` is more than half of ``2^n_T``, all ``2^n_T`` text masks are enumerated
       instead, provided ``budget // 2^n_T`` still reaches ``min_I``;
    5. ``m_image = min(2^n_I, budget // m_text)``.

    Args:
        budget: Number of image-text pairs.
        n_image: Image players.
        n_text: Text players.
        n_image_features: Distinct image parts ``F_I`` of the fitted terms.
        n_text_features: Distinct text parts ``F_T``.

    Returns:
        ``(m_image, m_text)``.
    """
    all_text = _exhaustive(n_text) or budget
    all_image = _exhaustive(n_image) or budget
    min_text = min(all_text, n_text_features)
    min_image = min(all_image, n_image_features)
    need_text = min(all_text, math.ceil(1.25 * n_text_features))
    need_image = min(all_image, math.ceil(1.25 * n_image_features))
    m_text = min(all_text, max(4, math.ceil(math.sqrt(budget) * n_text / n_image)))
    m_text = max(m_text, need_text)
    if budget // m_text < need_image:
        m_text = max(min_text, budget // need_image)
    m_text = max(min_text, min(m_text, budget // min_image))
    if all_text > m_text > all_text // 2 and budget // all_text >= min_image:
        m_text = all_text
    return min(all_image, budget // m_text), m_text


def _crossmodal_minimum(
    terms: Sequence[Term], n_image: int, n_text: int
) -> tuple[list[Term], list[Term], int, int]:
    image_feats, text_feats, _, _ = split_terms(terms, n_image)
    return (
        image_feats,
        text_feats,
        _cap(len(image_feats), n_image),
        _cap(len(text_feats), n_text),
    )


def plan_crossmodal(
    settings: Settings,
    n_image: int,
    n_text: int,
    *,
    m_image: Any = None,
    m_text: Any = None,
) -> SamplingPlan:
    """The plan of the cross-modal estimator for ``n_image`` image and ``n_text`` text players.

    ``m_image``/``m_text`` override the split (one of them with a budget, or both). Without a
    budget or masks the default rule applies: :func:`default_budget` pairs split by
    :func:`crossmodal_split`, with the image side capped at the masks a caption of
    :data:`REFERENCE_TOKENS` tokens gets (so a short caption costs no more than a long one).
    """
    if settings.index != "FWBII":
        raise ValueError(
            f"approximate_crossmodal supports index='FWBII' only; got {settings.index!r}. The "
            "Shapley kernel does not factorise across modalities: use "
            "approximate_interactions(..., index='FSII') on a joint game instead."
        )
    n_i = check_n_players(n_image, "n_image")
    n_t = check_n_players(n_text, "n_text")
    terms = _terms(settings, n_i + n_t, n_i)
    image_feats, text_feats, min_i, min_t = _crossmodal_minimum(terms, n_i, n_t)
    minimum = min_i * min_t
    hint = (
        f"The fitted terms need at least {min_i} distinct image masks and {min_t} distinct "
        f"text masks, i.e. a budget of at least {minimum} pairs (more for a stable "
        "estimate); pass a larger budget, set m_image/m_text, or fit fewer pairs with "
        "pairs='crossmodal' or pairs=[...]."
    )
    budget = settings.budget
    mi = None if m_image is None else check_budget(m_image, "m_image")
    mt = None if m_text is None else check_budget(m_text, "m_text")
    rule = "given"
    if mi is None and mt is None:
        if budget is None:
            rule = "default"
            budget = default_budget(minimum)
            mi, mt = crossmodal_split(budget, n_i, n_t, len(image_feats), len(text_feats))
            reference = max(4, math.ceil(math.sqrt(budget) * REFERENCE_TOKENS / n_i))
            need_i = _cap(math.ceil(1.25 * len(image_feats)), n_i)
            mi = min(mi, max(budget // reference, need_i))
        else:
            mi, mt = crossmodal_split(budget, n_i, n_t, len(image_feats), len(text_feats))
    elif mi is None or mt is None:
        if budget is None:
            raise ValueError("Give both m_image and m_text, or one of them and a budget.")
        mi = budget // mt if mt is not None else mi
        mt = budget // mi if mi is not None and mt is None else mt
    assert mi is not None and mt is not None
    mi, mt = _cap(mi, n_i), _cap(mt, n_t)
    if mi < min_i or mt < min_t:
        raise NotIdentifiableError(
            f"{mi} image masks x {mt} text masks cannot identify the interactions. " + hint
        )
    return SamplingPlan(
        settings=settings,
        design="crossmodal",
        n_players=n_i + n_t,
        n_image=n_i,
        terms=tuple(terms),
        budget=mi * mt,
        minimum=minimum,
        hint=hint,
        budget_rule=rule,
        m_image=mi,
        m_text=mt,
        image_features=tuple(image_feats),
        text_features=tuple(text_feats),
        minimum_image=min_i,
        minimum_text=min_t,
    )


def plan_joint(settings: Settings, n_players: int, *, n_image: int | None = None) -> SamplingPlan:
    """The plan of the model-agnostic estimator (one coalition of all players per evaluation).

    FSII adds the empty and the full coalition (enforced exactly) to the minimum.
    """
    n = check_n_players(n_players)
    terms = _terms(settings, n, n_image)
    extra = 2 if settings.index == "FSII" else 0
    minimum = len(terms) + extra
    full = _exhaustive(n)
    if full is not None:
        minimum = min(minimum, full)
    hint = (
        f"{len(terms)} interactions are fitted (n={n}, max_order={settings.max_order}); use a "
        f"budget of at least {minimum} (several times more for a stable estimate), or fit "
        "fewer pairs with pairs=[...]."
    )
    budget = settings.budget
    rule = "given"
    if budget is None:
        budget, rule = default_budget(minimum), "default"
    if budget < minimum:
        raise NotIdentifiableError(f"budget={budget} is too small. {hint}")
    return SamplingPlan(
        settings=settings,
        design="joint",
        n_players=n,
        n_image=n_image,
        terms=tuple(terms),
        budget=budget,
        minimum=minimum,
        hint=hint,
        budget_rule=rule,
    )


def minimum_budget(
    n_image: int,
    n_text: int,
    *,
    max_order: int = 2,
    pairs: PairsSpec = "all",
    crossmodal: bool = True,
) -> int:
    """The fewest evaluations that identify the fitted terms (for every seed).

    Args:
        n_image: Image players.
        n_text: Text players.
        max_order: Highest interaction order.
        pairs: Fitted pairs (see :func:`fixlip_captum.solvers.interaction_terms`).
        crossmodal: ``True``: image-text pairs for :func:`approximate_crossmodal`
            (distinct image parts x distinct text parts, each capped at ``2^n``);
            ``False``: joint evaluations for :func:`approximate_interactions` with
            FWBII (one per term).

    Returns:
        The minimum; a stable estimate needs a few times more.
    """
    settings = Settings.create(max_order=max_order, pairs=pairs)
    terms = _terms(settings, n_image + n_text, n_image)
    if not crossmodal:
        return len(terms)
    return math.prod(_crossmodal_minimum(terms, n_image, n_text)[2:])
