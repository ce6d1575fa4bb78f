"""Poisson components: non-negative integer counts, features independent given the component.

Result variable ``rate`` (component, feature): the Poisson mean of each feature in each
component. The component log density sums over the features before the log-sum-exp over
components (one label per row), ``log f(x | rate_k) = sum_d x_d log rate_kd - rate_kd -
log(x_d!)``, the ``log(x!)`` term included (so log-likelihoods compare with published ones).

Prior: ``rate_kd ~ Gamma(rate_shape_d, rate_rate_d)`` (shape, rate parametrisation: mean
``shape / rate``) on every entry. Defaults (``None`` = scaled to the data): ``rate_shape = 1``
and ``rate_rate = 1 / mean_d`` with ``mean_d`` the mean count of feature ``d`` (floored at
``1 / N`` for a column of zeros): an exponential prior whose mean is the data mean, weakly
informative (its sd equals its mean, so every rate from 0 to a few times the data mean is
plausible). MAP-EM's conjugate update is the posterior mode ``(shape - 1 + sum_n r_nk x_nd) /
(rate + n_k)``, floored at ``RATE_FLOOR`` (the mode is 0 when ``shape - 1 + sum_n r_nk x_nd
<= 0``, possible with ``rate_shape < 1``, where the Gamma density is unbounded at 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any, override

import numpy as np
from scipy.special import gammaln

from bayesmix._validation import DataError, _fmt_value, check_X
from bayesmix.families._base import (
    BLOCK_ELEMENTS,
    Family,
    chunk_means,
    data_moments,
    fill_missing,
    mixture_logp_graph,
    stack_draws,
    take_components,
)

__all__ = ["RATE_FLOOR", "PoissonFamily", "check_counts", "poisson_log_density"]

#: Smallest rate MAP-EM returns (the Gamma posterior's mode may be 0 when ``rate_shape < 1``).
RATE_FLOOR = 1e-10
_LOG_TINY = np.log(np.finfo(float).tiny)  # about -708: stands in for log(0)


def check_counts(X: np.ndarray, name: str = "X") -> np.ndarray:
    """Raise DataError unless every value of the (finite, float) array X is a count 0, 1, 2, ...

    Returns X unchanged.
    """
    negative = X < 0
    if negative.any():
        i, j = np.argwhere(negative)[0]
        raise DataError(
            f"Negative values in data {name}: expected counts 0, 1, 2, ..., got "
            f"{_fmt_value(X[i, j])} at row {i}, column {j} ({int(negative.sum())} negative "
            "value(s)); drop those rows or correct them"
        )
    fractional = (X != np.floor(X)) & ~np.isnan(X)  # NaN: a missing value (missing="model")
    if fractional.any():
        i, j = np.argwhere(fractional)[0]
        raise DataError(
            f"Poisson mixtures need counts (non-negative integers): expected 0, 1, 2, ..., got "
            f"{_fmt_value(X[i, j])} at row {i}, column {j} of {name} "
            f"({int(fractional.sum())} such value(s)); round them to counts or drop those rows"
        )
    return X


def poisson_log_density(X: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """``sum_d x_nd log rate_kd - rate_kd - log(x_nd!)`` for X (N, D), rate (..., K, D).

    Returns (..., N, K). A rate of 0 gives probability 1 to a count of 0 and (almost) 0 to
    any other count (``log 0`` floored at about -708, so no ``0 * -inf = nan``). A NaN entry
    is a missing value: the sum runs over each row's observed features.
    """
    X = np.asarray(X, dtype=float)
    rate = np.asarray(rate, dtype=float)
    with np.errstate(divide="ignore"):
        log_rate = np.maximum(np.log(rate), _LOG_TINY)
    observed = ~np.isnan(X)
    if not observed.all():
        X = np.where(observed, X, 0.0)
        seen = observed.astype(float)
        log_fact = gammaln(X + 1.0).sum(axis=1)  # 0 for the missing entries
        return (
            X @ np.swapaxes(log_rate, -1, -2)
            - seen @ np.swapaxes(rate, -1, -2)
            - log_fact[..., :, None]
        )
    log_fact = gammaln(X + 1.0).sum(axis=1)  # (N,)
    return X @ np.swapaxes(log_rate, -1, -2) - rate.sum(axis=-1)[..., None, :] - log_fact[:, None]


def _graph_logp(value, w, rate, mask=None, labels=None):
    """``logsumexp_k [log w_k + x @ log(rate_k) - sum_d rate_kd] - sum_d log(x_d!)``.

    With ``mask`` (N, D), 1 where observed (``value`` 0 where missing, so its ``x log rate``
    and ``log x!`` terms are 0), ``sum_d rate_kd`` runs over each row's observed features:
    ``mask @ rate^T``; ``labels``: see :func:`~bayesmix.families._base.mixture_logp_graph`.
    """
    import pytensor.tensor as pt

    k, d = rate.shape[-2], rate.shape[-1]
    w = w.reshape((k,))
    rate = rate.reshape((k, d))
    total = pt.sum(rate, axis=-1) if mask is None else pt.dot(mask, rate.T)
    comp = pt.dot(value, pt.log(rate).T) - total  # (N, K)
    log_fact = pt.sum(pt.gammaln(value + 1.0), axis=-1)
    return mixture_logp_graph(w, comp, labels) - log_fact


def _graph_random(w, rate, rng=None, size=None):
    from bayesmix.families import graph_draw

    return graph_draw(PoissonFamily(), {"w": w, "rate": rate}, {"w": 1, "rate": 2}, rng, size)


class PoissonFamily(Family):
    """Mixtures of independent Poisson counts."""

    name = "poisson"
    title = "Poisson"
    em_class = "PoissonMixtureEM"
    select_init = "kmeans"
    prior_fields = ("rate_shape", "rate_rate")
    observed_dtype = np.int64
    supports_missing = True
    graph_labels = True
    plots = ("counts",)
    trace_variables = ("w", "rate")
    ppc_style = "counts"

    @override
    def variables(self, covariance, n_features):
        return {"rate": ("component", "feature")}

    @override
    def check_data(
        self, X, *, n_components=None, covariance=None, fitting=True, name="X", allow_nan=False
    ):
        X = check_X(
            X,
            name=name,
            n_components=n_components if fitting else None,
            ensure_2d=False,
            allow_nan=allow_nan,
        )
        return check_counts(X, name)

    @override
    def replicate_dtype(self, X):
        return np.int64

    @override
    def resolve_priors(self, priors, X, n_components, covariance, sample_weight=None):
        X = np.asarray(X, dtype=float)
        data_mean, _, n_rows = data_moments(X, sample_weight)
        d = X.shape[1]
        shape = getattr(priors, "rate_shape", None)
        rate = getattr(priors, "rate_rate", None)
        shape = np.ones(d) if shape is None else np.broadcast_to(np.asarray(shape, float), (d,))
        if rate is None:
            mean = np.maximum(data_mean, 1.0 / n_rows)
            rate = shape / mean
        else:
            rate = np.broadcast_to(np.asarray(rate, float), (d,))
        return {"rate_shape": np.array(shape, dtype=float), "rate_rate": np.array(rate, float)}

    @override
    def component_log_density(self, X, params: Mapping[str, Any]) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        lead = np.asarray(params["w"]).shape[:-1]
        (rate,) = stack_draws(params, ("rate",), lead, {"rate": 2})
        k = rate.shape[1]
        n = X.shape[0]
        out = np.empty((rate.shape[0], n, k))
        step = max(1, BLOCK_ELEMENTS // max(n * k * 2, 1))
        for start in range(0, rate.shape[0], step):
            out[start : start + step] = poisson_log_density(X, rate[start : start + step])
        return out.reshape(lead + (n, k))

    @override
    def draw(self, params, z, rng):
        rows = np.arange(z.shape[0])[:, None]
        lam = np.asarray(params["rate"], float)[rows, z]  # (S, n, D)
        return rng.poisson(lam).astype(np.int64)

    @override
    def conditional_fill(self, params, X, z, rng=None):
        # features are independent given the component: a missing x_d is Poisson(rate_zd)
        lam = take_components(params["rate"], z)  # (S, n, D)
        values = lam if rng is None else rng.poisson(lam).astype(float)
        return fill_missing(X, values)

    @override
    def n_parameters(self, n_components, n_features, covariance):
        return int(n_components * n_features + n_components - 1)

    @override
    def label_features(self, params):
        return np.log(np.maximum(np.asarray(params["rate"], float), RATE_FLOOR))

    @override
    def marginal(self, params, j):
        return {"w": np.asarray(params["w"]), "rate": np.asarray(params["rate"])[..., j : j + 1]}

    @override
    def order_key(self, point):
        return np.asarray(point["rate"], float)[:, 0]

    # ------------------------------------------------------------------ EM
    @override
    def em_point(self, estimator, n_features):
        return {
            "w": np.asarray(estimator.weights_, float),
            "rate": np.asarray(estimator.means_, float),
        }

    # ------------------------------------------------------------------ graph
    @override
    def add_to_graph(self, spec, priors, n_features, w, observed, formulation="custom", rows=None):
        import pymc as pm

        rate = pm.Gamma(
            "rate",
            alpha=priors["rate_shape"],
            beta=priors["rate_rate"],
            dims=("component", "feature"),
        )
        logp = _graph_logp
        if rows is not None:  # missing entries and labels: data of the density, not params
            logp = partial(_graph_logp, mask=rows.mask(), labels=rows.labels())
        pm.CustomDist(
            "x",
            w,
            rate,
            logp=logp,
            random=_graph_random,
            signature="(k),(k,d)->(d)",
            **observed,
        )

    @override
    def free_var_names(self, spec, n_features):
        return ["rate"]

    @override
    def point_to_initvals(self, spec, point, n_features):
        return {"rate": np.maximum(np.asarray(point["rate"], float), 1e-6)}

    @override
    def default_point(self, spec, X):
        return {"rate": np.maximum(chunk_means(X, spec.n_components), 0.05)}
