"""``plot_component_images``, ``plot_generated_images``: Bernoulli components, draws as images."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from bayesmix._validation import DataError, ParameterError
from bayesmix.plotting._common import (
    _draw_params,
    _method_label,
    _point_params,
    _relabelled,
    _require_group,
)


def _image_grid(n: int, ncols: int | None = None):
    ncols = ncols or int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    return nrows, ncols


def plot_component_images(
    result: xr.DataTree,
    *,
    group: str = "em",
    shape: tuple[int, int] = (8, 8),
    n_draws: int = 200,
    seed: int = 0,
) -> Figure:
    """Component means of a Bernoulli mixture as images, with their weights in the titles.

    Parameters
    ----------
    result : xarray.DataTree
        Bernoulli result (``p`` of shape (K, D) with D = prod(shape)).
    group : {"em", "map", "posterior"}
        Which estimate: a point estimate, or the posterior mean of ``n_draws`` draws aligned to
        the EM (else MAP) labels.
    shape : (int, int)
        Image shape (rows, columns).
    n_draws : int
        Posterior draws averaged when ``group="posterior"``.
    seed : int

    Returns
    -------
    matplotlib.figure.Figure
    """
    if group not in ("em", "map", "posterior"):
        raise ParameterError(
            f"unknown group in plot_component_images: expected 'em', 'map' or 'posterior', "
            f"got {group!r}; pick one of those"
        )
    _require_group(result, group, "plot_component_images")
    if group == "posterior":
        draws = _draw_params(_relabelled(result, "pivot"), "posterior", n_draws, seed)
        p, w = draws["p"].mean(0), draws["w"].mean(0)
        what = f"posterior mean of {draws['p'].shape[0]} draws"
    else:
        params = _point_params(result, group)
        if "p" not in params:
            raise DataError(
                f"plot_component_images needs Bernoulli parameters: expected 'p' in the "
                f"'{group}' group, got {sorted(params)}; use a Bernoulli result"
            )
        p, w = params["p"], params["w"]
        what = _method_label(result, group) if group == "em" else "MAP"
    k, d = p.shape
    if int(np.prod(shape)) != d:
        raise ParameterError(
            f"image shape does not fit the features: expected prod(shape) = {d}, got "
            f"{shape}; pass shape=(rows, cols) with rows * cols = {d}"
        )
    order = np.argsort(-w, kind="stable")
    nrows, ncols = _image_grid(k, min(k, 5))
    fig = Figure(figsize=(1.9 * ncols + 0.8, 2.1 * nrows + 0.5), layout="constrained")
    axs = np.ravel(fig.subplots(nrows, ncols, squeeze=False))
    im = None
    for a, c in zip(axs, order, strict=False):
        im = a.imshow(p[c].reshape(shape), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        a.set_title(f"k = {c}, w = {w[c]:.3f}", fontsize="medium")
        a.set_xticks([])
        a.set_yticks([])
    for a in axs[k:]:
        a.set_visible(False)
    fig.colorbar(im, ax=axs[:k].tolist(), shrink=0.8, label="P(pixel = 1)")
    fig.suptitle(f"Component means, {what}; ordered by weight w")
    return fig


def plot_generated_images(
    images: Any,
    *,
    shape: tuple[int, int] = (8, 8),
    n: int = 25,
    labels: Sequence[Any] | None = None,
    title: str = "Generated images",
) -> Figure:
    """A grid of (binary) images, for example draws from a fitted Bernoulli mixture.

    Parameters
    ----------
    images : array of shape (M, D) or (M, rows, cols), or tuple (X, z)
        Images; a tuple ``(X, z)`` as returned by ``generate`` uses ``z`` as labels.
    shape : (int, int)
        Image shape when ``images`` is flat.
    n : int
        Number of images shown (the first ``n``).
    labels : sequence, optional
        One label per image, shown as the panel title (for example the component).
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if isinstance(images, tuple) and len(images) == 2:
        images, z = images
        labels = z if labels is None else labels
    arr = np.asarray(images, dtype=float)
    if arr.ndim == 2:
        if arr.shape[1] != int(np.prod(shape)):
            raise ParameterError(
                f"image shape does not fit the features: expected prod(shape) = {arr.shape[1]},"
                f" got {shape}; pass shape=(rows, cols)"
            )
        arr = arr.reshape((arr.shape[0], *shape))
    if arr.ndim != 3 or arr.shape[0] == 0:
        raise DataError(
            f"plot_generated_images: expected images of shape (M, D) or (M, rows, cols) with "
            f"M >= 1, got shape {np.shape(images)}; pass an array of images"
        )
    m = min(n, arr.shape[0])
    nrows, ncols = _image_grid(m)
    fig = Figure(figsize=(1.35 * ncols + 0.3, 1.45 * nrows + 0.5), layout="constrained")
    axs = np.ravel(fig.subplots(nrows, ncols, squeeze=False))
    for i, a in enumerate(axs):
        if i >= m:
            a.set_visible(False)
            continue
        a.imshow(arr[i], cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        a.set_xticks([])
        a.set_yticks([])
        if labels is not None:
            a.set_title(f"k = {labels[i]}", fontsize="small")
    fig.suptitle(f"{title} ({m} of {arr.shape[0]})")
    return fig
