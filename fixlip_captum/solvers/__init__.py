"""Term lookups and weighted least-squares solvers (direct and iterative)."""

from .crossmodal import crossmodal_method, solve_crossmodal
from .systems import SOLVERS, JointSystem, check_solver, joint_method
from .terms import (
    centred_design,
    centred_to_product,
    describe_pairs,
    interaction_terms,
    split_terms,
    terms_index,
)
from .wls import NotIdentifiableError, solve_normal_equations

__all__ = [
    "SOLVERS",
    "JointSystem",
    "NotIdentifiableError",
    "centred_design",
    "centred_to_product",
    "check_solver",
    "crossmodal_method",
    "describe_pairs",
    "interaction_terms",
    "joint_method",
    "solve_crossmodal",
    "solve_normal_equations",
    "split_terms",
    "terms_index",
]
