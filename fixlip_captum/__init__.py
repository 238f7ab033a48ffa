"""fixlip-captum: faithful interaction explanations for CLIP and SigLIP.

Core estimators (torch, any device):

* :func:`exact_interactions` — enumerate all coalitions (n <= 20);
* :func:`approximate_interactions` — model-agnostic sampling estimator;
* :func:`approximate_crossmodal` — the fast FIxLIP estimator for image-text games.

Whole datasets: :func:`explain_dataset` (resumable Parquet output, local or Ray engine)
and :func:`load_results`.

Results are :class:`FIxLIPInteractionValues`, a subclass of ``shapiq.InteractionValues``.
"""

from typing import Any

from .estimators import approximate_crossmodal, approximate_interactions, exact_interactions
from .interaction_values import (
    ExplanationContext,
    FIxLIPInteractionValues,
    first_order_values,
    load_interaction_values,
    make_interaction_values,
)
from .solvers import NotIdentifiableError

__version__ = "0.1.0"

__all__ = [
    "ExplanationContext",
    "FIxLIP",
    "FIxLIPInteractionValues",
    "NotIdentifiableError",
    "__version__",
    "approximate_crossmodal",
    "approximate_interactions",
    "exact_interactions",
    "explain_dataset",
    "first_order_values",
    "load_interaction_values",
    "load_results",
    "make_interaction_values",
]


def __getattr__(name: str) -> Any:
    # FIxLIP pulls in captum and the model adapters: import it on first use only.
    if name == "FIxLIP":
        from .attr.fixlip import FIxLIP

        return FIxLIP
    # The batch engine pulls in pyarrow: also on first use only.
    if name in ("explain_dataset", "load_results"):
        from . import batch

        return getattr(batch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
