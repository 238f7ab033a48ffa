"""Term lookups and weighted least-squares solvers (direct and iterative)."""

from .systems import (
    SOLVERS,
    JointSystem,
    check_solver,
    crossmodal_method,
    joint_method,
    solve_crossmodal,
)
from .terms import (
    centred_design,
    centred_to_product,
    describe_pairs,
    interaction_terms,
    split_terms,
    terms_index,
)
from .wls import NotIdentifiableError, crossmodal_normal_equations, solve_normal_equations

__all__ = [
    "SOLVERS",
    "JointSystem",
    "NotIdentifiableError",
    "centred_design",
    "centred_to_product",
    "check_solver",
    "crossmodal_method",
    "crossmodal_normal_equations",
    "describe_pairs",
    "interaction_terms",
    "joint_method",
    "solve_crossmodal",
    "solve_normal_equations",
    "split_terms",
    "terms_index",
]
