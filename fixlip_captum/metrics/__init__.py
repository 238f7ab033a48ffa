"""Faithfulness metrics for explanations over the joint players (patches, then tokens).

Each metric takes an explanation (:class:`~fixlip_captum.interaction_values.FIxLIPInteractionValues`
or any shapiq ``InteractionValues`` of order 1 or 2) and, where it needs model values, a
joint game ``game(coalitions [m, n] bool) -> [m]``. Compare methods through one game.
"""

from fixlip_captum.metrics.insertion_deletion import (
    InsertionDeletionResult,
    greedy_order,
    insertion_deletion,
)
from fixlip_captum.metrics.p_faithfulness import (
    FaithfulnessResult,
    draw_coalitions,
    faithfulness_scores,
    p_faithfulness,
)
from fixlip_captum.metrics.pointing_game import (
    PointingGameResult,
    pointing_game,
    pointing_game_ratio,
)

__all__ = [
    "FaithfulnessResult",
    "InsertionDeletionResult",
    "PointingGameResult",
    "draw_coalitions",
    "faithfulness_scores",
    "greedy_order",
    "insertion_deletion",
    "p_faithfulness",
    "pointing_game",
    "pointing_game_ratio",
]
