"""Value functions (games) of an image-text pair for the estimators.

* :class:`CrossModalGame`: ``(image_coalitions [m_I, n_I], text_coalitions [m_T, n_T]) ->
  values [m_I, m_T]`` for :func:`fixlip_captum.approximate_crossmodal`;
* :class:`JointGame`: ``coalitions [m, n_I + n_T] -> values [m]`` for
  :func:`fixlip_captum.approximate_interactions` and :func:`fixlip_captum.exact_interactions`.
"""

from fixlip_captum.games.dual_encoder import CrossModalGame, JointGame

__all__ = ["CrossModalGame", "JointGame"]
