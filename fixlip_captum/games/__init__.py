"""Value functions (games) for the estimators.

* :class:`CrossModalGame`: ``(image_coalitions [m_I, n_I], text_coalitions [m_T, n_T]) ->
  values [m_I, m_T]`` of an image-text pair, for :func:`fixlip_captum.approximate_crossmodal`;
* :class:`JointGame`: ``coalitions [m, n_I + n_T] -> values [m]`` of an image-text pair, for
  :func:`fixlip_captum.approximate_interactions` and :func:`fixlip_captum.exact_interactions`;
* :class:`ForwardFuncGame` (built by :func:`forward_func_games`): ``coalitions [m, n] ->
  values [m]`` of one example of a generic ``forward_func`` with Captum's arguments;
* :func:`evaluate_game`: a joint game on many coalitions, in batches.
"""

from fixlip_captum.games.dual_encoder import CrossModalGame, JointGame
from fixlip_captum.games.evaluate import evaluate_game
from fixlip_captum.games.forward_func import ForwardFuncGame, forward_func_games

__all__ = ["CrossModalGame", "ForwardFuncGame", "JointGame", "evaluate_game", "forward_func_games"]
