"""Figures from bayesmix results (one ``xarray.DataTree`` per fit).

Every public function takes a result laid out as in ``docs/architecture.md`` (groups
``posterior``, ``em``, ``map``, ``observed_data``, ``posterior_predictive``, ...) and returns a
:class:`matplotlib.figure.Figure`. None of them calls ``plt.show``; they work headless (Agg).
Component ``k`` has the same colour in every figure (:func:`component_colors`).

Densities and memberships come from :mod:`bayesmix._math`, so the mixture mathematics is
written once. Posterior draws are aligned to a reference labelling (EM, else MAP) before
they are averaged or coloured, so that label switching does not blur the pictures.

One module per figure, as arviz-plots has it: ``density_1d``, ``clusters_2d``,
``membership``, ``mcmc`` (trace and rank), ``ppc``, ``em_history``, ``k_selection``,
``images``, ``counts``, ``item_profiles``; ``plan`` (``plot_plan``, ``write_plots``) imports
them; they import only ``_common`` (colours, readers of a result, hints, ``save_figure``) and
``_axes`` (axes and robust limits). This module re-exports the public names.
"""

from bayesmix.plotting._common import FEATURE_UNITS, component_colors, save_figure
from bayesmix.plotting.clusters_2d import MAX_MATRIX_FEATURES, plot_clusters_2d
from bayesmix.plotting.coclustering import plot_coclustering
from bayesmix.plotting.counts import plot_count_histogram
from bayesmix.plotting.density_1d import plot_density_1d
from bayesmix.plotting.em_history import plot_em_history
from bayesmix.plotting.images import plot_component_images, plot_generated_images
from bayesmix.plotting.item_profiles import plot_item_profiles
from bayesmix.plotting.k_selection import plot_k_selection
from bayesmix.plotting.mcmc import MAX_DIAGNOSTIC_FEATURES, plot_rank, plot_trace
from bayesmix.plotting.membership import plot_membership_uncertainty
from bayesmix.plotting.plan import plot_plan, write_plots
from bayesmix.plotting.ppc import plot_ppc

__all__ = [
    "FEATURE_UNITS",
    "MAX_DIAGNOSTIC_FEATURES",
    "MAX_MATRIX_FEATURES",
    "component_colors",
    "plot_clusters_2d",
    "plot_coclustering",
    "plot_component_images",
    "plot_count_histogram",
    "plot_density_1d",
    "plot_em_history",
    "plot_generated_images",
    "plot_item_profiles",
    "plot_k_selection",
    "plot_membership_uncertainty",
    "plot_plan",
    "plot_ppc",
    "plot_rank",
    "plot_trace",
    "save_figure",
    "write_plots",
]
