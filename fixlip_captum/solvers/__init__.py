"""Term lookups and weighted least-squares solvers."""

from .terms import (
    centred_design,
    centred_to_product,
    describe_pairs,
    interaction_terms,
    terms_index,
)
from .wls import NotIdentifiableError, crossmodal_normal_equations, solve_normal_equations

__all__ = [
    "NotIdentifiableError",
    "centred_design",
    "centred_to_product",
    "crossmodal_normal_equations",
    "describe_pairs",
    "interaction_terms",
    "solve_normal_equations",
    "terms_index",
]
