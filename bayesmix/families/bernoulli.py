"""Bernoulli components: binary data, features independent given the component.

Result variable ``p`` (component, feature): the probability of a 1. Prior ``p ~ Beta(beta_a,
beta_b)`` on every entry. The component log density sums over the features before the
log-sum-exp over components (one label per row): ``x @ logit(p)^T + sum_d log(1 - p)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any, override

import numpy as np

from bayesmix._validation import check_X
from bayesmix.families._base import (
    BLOCK_ELEMENTS,
    Family,
    chunk_means,
    fill_missing,
    mixture_logp_graph,
    stack_draws,
    take_components,
)

__all__ = ["BernoulliFamily"]

_LOG_TINY = np.log(np.finfo(float).tiny)  # about -708: stands in for log(0)


def _block(X, p, observed=None):
    # X (N, D) in {0, 1}; p (S, K, D) -> (S, N, K): the sum over features comes first.
    # log(0) is floored at log(tiny) so that a pixel with p = 0 (or 1) costs about -708 when
    # it is on (off) and exactly 0 otherwise, instead of 0 * -inf = NaN in the products.
    # ``observed`` (N, D) 0/1 with X 0 where missing: the sum over each row's observed
    # features, X0 @ log(p)^T + (M - X0) @ log(1 - p)^T.
    with np.errstate(divide="ignore"):
        log_p = np.maximum(np.log(p), _LOG_TINY)
        log_q = np.maximum(np.log1p(-p), _LOG_TINY)
    off = 1.0 - X if observed is None else observed - X
    return X @ np.swapaxes(log_p, -1, -2) + off @ np.swapaxes(log_q, -1, -2)


def _graph_logp(value, w, p, mask=None, labels=None):
    """``sum_d [x log p + (1 - x) log(1 - p)] = x @ logit(p)^T + sum_d log(1 - p)``.

    One (N, D) @ (D, K) product (and its transpose in the gradient), then a log-sum-exp.
    With ``mask`` (N, D), 1 where observed (``value`` 0 where missing), the last sum runs
    over each row's observed features: ``mask @ log(1 - p)^T``; ``labels``: see
    :func:`~bayesmix.families._base.mixture_logp_graph`.
    """
    import pytensor.tensor as pt

    k, d = p.shape[-2], p.shape[-1]
    w = w.reshape((k,))
    p = p.reshape((k, d))
    log1m = pt.log1p(-p)  # (K, D)
    off = pt.sum(log1m, axis=-1) if mask is None else pt.dot(mask, log1m.T)
    comp = pt.dot(value, (pt.log(p) - log1m).T) + off  # (N, K)
    return mixture_logp_graph(w, comp, labels)


def _graph_random(w, p, rng=None, size=None):
    from bayesmix.families import graph_draw

    return graph_draw(BernoulliFamily(), {"w": w, "p": p}, {"w": 1, "p": 2}, rng, size)


class BernoulliFamily(Family):
    """Mixtures of independent Bernoulli vectors (binary data)."""

    name = "bernoulli"
    title = "Bernoulli"
    em_class = "BernoulliMixtureEM"
    prior_fields = ("beta_a", "beta_b")
    observed_dtype = np.int64
    supports_missing = True
    graph_labels = True
    plots = ("images",)
    ppc_style = "frequency"

    @override
    def variables(self, covariance, n_features):
        return {"p": ("component", "feature")}

    @override
    def check_data(
        self, X, *, n_components=None, covariance=None, fitting=True, name="X", allow_nan=False
    ):
        return check_X(
            X,
            name=name,
            n_components=n_components if fitting else None,
            binary=True,
            ensure_2d=False,
            allow_nan=allow_nan,
        )

    @override
    def replicate_dtype(self, X):
        return np.int8

    @override
    def resolve_priors(self, priors, X, n_components, covariance, sample_weight=None):
        return {
            "beta_a": np.asarray(float(priors.beta_a)),
            "beta_b": np.asarray(float(priors.beta_b)),
        }

    @override
    def component_log_density(self, X, params: Mapping[str, Any]) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        observed = None
        if np.isnan(X).any():  # NaN = missing: each row's observed features
            observed = (~np.isnan(X)).astype(float)
            X = np.where(observed > 0, X, 0.0)
        lead = np.asarray(params["w"]).shape[:-1]
        (p,) = stack_draws(params, ("p",), lead, {"p": 2})
        k = p.shape[1]
        n = X.shape[0]
        out = np.empty((p.shape[0], n, k))
        step = max(1, BLOCK_ELEMENTS // max(n * k * 2, 1))
        for start in range(0, p.shape[0], step):
            out[start : start + step] = _block(X, p[start : start + step], observed)
        return out.reshape(lead + (n, k))

    @override
    def draw(self, params, z, rng):
        rows = np.arange(z.shape[0])[:, None]
        q = np.asarray(params["p"])[rows, z]  # (S, n, D)
        return (rng.random(q.shape) < q).astype(np.int64)

    @override
    def conditional_fill(self, params, X, z, rng=None):
        # features are independent given the component: a missing x_d is Bernoulli(p_zd)
        q = take_components(params["p"], z)  # (S, n, D)
        values = q if rng is None else (rng.random(q.shape) < q).astype(float)
        return fill_missing(X, values)

    @override
    def n_parameters(self, n_components, n_features, covariance):
        return int(n_components * n_features + n_components - 1)

    @override
    def label_features(self, params):
        p = np.clip(np.asarray(params["p"], float), 1e-9, 1 - 1e-9)
        return np.log(p) - np.log1p(-p)

    # ------------------------------------------------------------------ EM
    @override
    def em_point(self, estimator, n_features):
        return {
            "w": np.asarray(estimator.weights_, float),
            "p": np.asarray(estimator.means_, float),
        }

    # ------------------------------------------------------------------ graph
    @override
    def add_to_graph(self, spec, priors, n_features, w, observed, formulation="custom", rows=None):
        import pymc as pm

        p = pm.Beta(
            "p", alpha=priors["beta_a"], beta=priors["beta_b"], dims=("component", "feature")
        )
        logp = _graph_logp
        if rows is not None:  # missing entries and labels: data of the density, not params
            logp = partial(_graph_logp, mask=rows.mask(), labels=rows.labels())
        pm.CustomDist(
            "x",
            w,
            p,
            logp=logp,
            random=_graph_random,
            signature="(k),(k,d)->(d)",
            **observed,
        )

    @override
    def free_var_names(self, spec, n_features):
        return ["p"]

    @override
    def point_to_initvals(self, spec, point, n_features):
        return {"p": np.clip(np.asarray(point["p"], float), 1e-6, 1 - 1e-6)}

    @override
    def default_point(self, spec, X):
        return {"p": np.clip(chunk_means(X, spec.n_components), 0.05, 0.95)}
