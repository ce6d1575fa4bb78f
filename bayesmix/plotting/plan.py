"""``plot_plan`` (the ``_DATA_VIEWS`` registry) and ``write_plots``: the figures of a result."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import xarray as xr
from matplotlib.figure import Figure

from bayesmix._validation import ParameterError
from bayesmix.plotting._common import (
    _HINT_STYLE,
    _family,
    _observed,
    _resolve_features,
    save_figure,
)
from bayesmix.plotting.clusters_2d import MAX_MATRIX_FEATURES, plot_clusters_2d
from bayesmix.plotting.coclustering import plot_coclustering
from bayesmix.plotting.counts import plot_count_histogram
from bayesmix.plotting.density_1d import plot_density_1d
from bayesmix.plotting.em_history import plot_em_history
from bayesmix.plotting.images import plot_component_images, plot_generated_images
from bayesmix.plotting.item_profiles import plot_item_profiles
from bayesmix.plotting.mcmc import plot_rank, plot_trace
from bayesmix.plotting.membership import plot_membership_uncertainty
from bayesmix.plotting.ppc import plot_ppc


def _view_images(result, X, features, groups, components):
    """Square binary images (digits: 8x8): the components and generated images."""
    d = X.shape[1]
    side = int(round(d**0.5))
    if side * side != d or d < 4:
        return []
    from bayesmix.inference import generate
    from bayesmix.inference._tree import estimate_group

    shape = (side, side)
    grp = "em" if "em" in groups else estimate_group(result)
    return [
        ("component_images", lambda: plot_component_images(result, group=grp, shape=shape)),
        (
            "generated_images",
            lambda: plot_generated_images(
                generate(result, 25, group=estimate_group(result), random_seed=0), shape=shape
            ),
        ),
    ]


def _view_clusters(result, X, features, groups, components):
    """One feature's density, or the components in a pair (or a scatter matrix) of features."""
    if X.shape[1] == 1 or (features is not None and len(features) == 1):
        first = None if features is None else features[0]
        return [("density_1d", lambda: plot_density_1d(result, feature=first))]
    pair = None if features is None else features[:MAX_MATRIX_FEATURES]
    # a sparse/DP mixture's filled components (``components()``): the empty ones are prior
    # draws whose ellipses would cover the panel
    return [("clusters_2d", lambda: plot_clusters_2d(components(), features=pair))]


def _view_counts(result, X, features, groups, components):
    return [("counts", lambda: plot_count_histogram(result))]


def _view_item_profiles(result, X, features, groups, components):
    return [("item_profiles", lambda: plot_item_profiles(result))]


def _view_membership(result, X, features, groups, components):
    """Membership per component: a sparse/DP mixture's filled ones (``components()``)."""
    return [("membership_uncertainty", lambda: plot_membership_uncertainty(components()))]


#: The data views a family can ask for in ``Family.plots``: name -> (result, X, features,
#: groups, components) -> list of (figure name, callable); ``components()`` is the result
#: whose components per-component figures draw (:func:`_components_once`).
_DATA_VIEWS: dict[str, Callable[..., list[tuple[str, Callable[[], Figure]]]]] = {
    "images": _view_images,
    "clusters": _view_clusters,
    "membership_uncertainty": _view_membership,
    "counts": _view_counts,
    "item_profiles": _view_item_profiles,
}


def _components_once(
    result: xr.DataTree, known: xr.DataTree | None = None
) -> Callable[[], xr.DataTree]:
    """``result``, or the filled components of a sparse/DP mixture, found at most once.

    ``known``: found already (``diagnose(result).filled``).
    """
    memo: list[xr.DataTree] = [] if known is None else [known]

    def get() -> xr.DataTree:
        if not memo:
            from bayesmix.results.sparse import CHECK_MAX_DRAWS, component_result

            memo.append(component_result(result, max_draws=CHECK_MAX_DRAWS))
        return memo[0]

    return get


def plot_plan(
    result: xr.DataTree,
    *,
    features: Sequence[Any] | None = None,
    components: xr.DataTree | None = None,
    partition: xr.DataArray | None = None,
) -> list[tuple[str, Callable[[], Figure]]]:
    """The plots that apply to a result: (file stem, function returning the Figure).

    The family and covariance come from the result's root attrs (see :func:`write_plots`).
    Bernoulli with square images (D = side**2 >= 4): ``component_images``,
    ``generated_images``. Gaussian: ``density_1d`` (D = 1, or one feature chosen) or
    ``clusters_2d`` (a pair, or a scatter matrix of up to :data:`MAX_MATRIX_FEATURES` chosen
    features), then ``membership_uncertainty``. For a sparse or Dirichlet-process mixture the
    per-component figures (``clusters_2d``, ``membership_uncertainty``, ``trace``, ``rank``)
    show its filled components (:func:`bayesmix.results.sparse.component_result`); the
    mixture density and the co-clustering do not depend on labels and use every component.
    Then ``em_history`` (with an ``em`` group), ``trace`` and ``rank`` (with a
    ``posterior``), ``coclustering`` (with a ``posterior`` and at most
    :data:`bayesmix.results.partition.MAX_PARTITION_OBS` observations), ``ppc`` (with a
    ``posterior_predictive``).
    Nothing is drawn until a function is called.

    Parameters
    ----------
    result : xarray.DataTree
    features : sequence of str or int, optional
        Features the figures concentrate on (clusters, trace, rank, PPC); checked here, so an
        unknown name fails at once. Default: each figure's own choice.
    components : xarray.DataTree, optional
        The result whose components the per-component figures draw, when it is known
        already (``diagnose(result).filled``); default: found here when first needed.
    partition : xarray.DataArray, optional
        The label-free point partition of the result when it is known already
        (``summarize_partition(result).labels``): ``coclustering`` orders the matrix by it
        instead of searching for it again. Default: searched when the figure is drawn.

    Returns
    -------
    list of (str, callable)

    Raises
    ------
    ParameterError
        For an unknown or repeated feature.
    """
    X, names = _observed(result)
    if features is not None:
        idx = _resolve_features(names, features, "plot_plan")
        if not idx:
            raise ParameterError(
                "plot_plan features: expected at least one feature, got none; pass names "
                f"among {names} or leave features out"
            )
        features = [names[i] for i in idx]
    groups = set(result.children)
    family = _family(result)
    components = _components_once(result, components)
    plan: list[tuple[str, Callable[[], Figure]]] = []
    for view in family.plots:
        builder = _DATA_VIEWS.get(view)
        if builder is not None:
            plan.extend(builder(result, X, features, groups, components))
    if "em" in groups:
        plan.append(("em_history", lambda: plot_em_history(result)))
    if "posterior" in groups:
        # Bernoulli: K x D probabilities are too many to draw; the weights tell the story
        plan.append(("trace", lambda: plot_trace(components(), features=features)))
        if result["posterior"].sizes.get("chain", 1) > 1:  # rank plots compare chains
            plan.append(("rank", lambda: plot_rank(components(), features=features)))
        from bayesmix.results.partition import MAX_PARTITION_OBS

        if X.shape[0] <= MAX_PARTITION_OBS:  # the matrix is N x N
            plan.append(("coclustering", lambda: plot_coclustering(result, partition=partition)))
    if "posterior_predictive" in groups:
        plan.append(("ppc", lambda: plot_ppc(result, features=features)))
    return plan


def write_plots(
    result: xr.DataTree,
    folder: str | os.PathLike,
    *,
    features: Sequence[Any] | None = None,
    raise_errors: bool = False,
    hints: str = "python",
    components: xr.DataTree | None = None,
    partition: xr.DataArray | None = None,
) -> tuple[dict[str, Path], dict[str, str]]:
    """Write every plot of :func:`plot_plan` as ``folder/<name>.png``.

    A plot that fails does not stop the others: it is returned with a one-line reason (for
    the report), unless ``raise_errors``.

    Parameters
    ----------
    result : xarray.DataTree
    folder : path-like
        Created when missing.
    features : sequence of str or int, optional
        As in :func:`plot_plan`.
    raise_errors : bool
        Raise the first plot error instead of recording it (for debugging).
    hints : {"python", "cli"}
        Whose words a figure uses to say how to choose what it shows: keyword arguments
        (``features=[...]``) or the command line's ``--features``.
    components, partition : optional
        As in :func:`plot_plan`.

    Returns
    -------
    written : dict of str to pathlib.Path
        Plot name -> PNG file, in the order of the plan.
    failed : dict of str to str
        Plot name -> ``"<ExceptionType>: <message on one line>"``.
    """
    if hints not in ("python", "cli"):
        raise ParameterError(f"hints must be 'python' or 'cli', got {hints!r}; pass one of them")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    failed: dict[str, str] = {}
    token = _HINT_STYLE.set(hints)
    try:
        return _write_each(
            result, folder, features, raise_errors, written, failed, components, partition
        )
    finally:
        _HINT_STYLE.reset(token)


def _write_each(
    result,
    folder: Path,
    features,
    raise_errors: bool,
    written,
    failed,
    components=None,
    partition=None,
):
    import matplotlib.pyplot as plt  # arviz-plots draws through pyplot: its figures need closing

    plan = plot_plan(result, features=features, components=components, partition=partition)
    for name, make in plan:
        path = folder / f"{name}.png"
        fig = None
        try:
            fig = make()
            save_figure(fig, path)
        except Exception as exc:  # one bad plot must not throw away the others
            if raise_errors:
                raise
            failed[name] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        else:
            written[name] = path
        finally:
            if fig is not None:
                plt.close(fig)
    return written, failed
