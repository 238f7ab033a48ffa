"""Figures for image-text explanations (matplotlib; nothing here calls ``plt.show()``).

Every ``plot_*`` function returns a new :class:`matplotlib.figure.Figure`; every ``draw_*``
function draws into an axes you pass. Colours: red = positive, blue = negative (the same as
shapiq's plots), symmetric scales around zero.

* :func:`plot_joint` / :func:`draw_joint`: patch heat map, coloured caption, top
  interactions as edges.
* :func:`plot_conditional`, :func:`plot_conditional_grid`, :func:`draw_conditional`: one
  player's interaction row ("what does 'red' bind to?"), for one or every token.
* :func:`plot_si_graph`, :func:`plot_upset`, :func:`plot_sentence`, :func:`plot_force`,
  :func:`plot_waterfall`: shapiq's plots with our labels, grid layout and thumbnails.
* :func:`plot_comparison`: one row per method on the same pair.
* :func:`plot_cliques`: greedy most/least similar subsets (the insertion/deletion order).
* :func:`write_report`: a self-contained HTML page.
* :func:`write_viewer` / :func:`show`: the interactive viewer, one self-contained HTML page
  (several explanations of one pair side by side); :func:`read_viewer_data` decodes one.
"""

from fixlip_captum.plot.cliques import clique_members, plot_cliques
from fixlip_captum.plot.comparison import plot_comparison
from fixlip_captum.plot.conditional import (
    draw_conditional,
    plot_conditional,
    plot_conditional_grid,
)
from fixlip_captum.plot.joint import draw_joint, plot_joint
from fixlip_captum.plot.report import write_report
from fixlip_captum.plot.shapiq_plots import (
    player_names,
    plot_force,
    plot_sentence,
    plot_si_graph,
    plot_upset,
    plot_waterfall,
)
from fixlip_captum.plot.viewer import ViewerPage, read_viewer_data, show, write_viewer

__all__ = [
    "ViewerPage",
    "clique_members",
    "draw_conditional",
    "draw_joint",
    "player_names",
    "plot_cliques",
    "plot_comparison",
    "plot_conditional",
    "plot_conditional_grid",
    "plot_force",
    "plot_joint",
    "plot_sentence",
    "plot_si_graph",
    "plot_upset",
    "plot_waterfall",
    "read_viewer_data",
    "show",
    "write_report",
    "write_viewer",
]
