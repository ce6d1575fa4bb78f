"""Categorical components (latent class analysis): every feature is an item with its own levels.

Data: integer codes ``0 .. L_d - 1`` per item ``d`` (the estimator also takes pandas
categoricals and strings, see :func:`encode_items`). Features are independent given the
component; component ``k`` gives item ``d`` a probability vector over its ``L_d`` levels.

Result variable ``probs`` with dims (component, feature, level): ``probs[k, d, l]`` is the
probability of level ``l`` of item ``d`` in component ``k``. The ``level`` axis has
``L_max = max_d L_d`` entries; an item with fewer levels is padded with exact zeros (so one set
of dims serves every item, and the draws and densities need no other layout information).
Extra coordinate: ``level`` = 0 .. L_max - 1 (:meth:`CategoricalFamily.coords`).

Prior: ``probs[k, d, :L_d] ~ Dirichlet(category_alpha)`` for every component and item
(``category_alpha`` default 1: flat on each simplex). The resolved prior array
``category_alpha`` has shape (D, L_max) and holds 0 for the padded levels; the graph reads the
number of levels of each item from it (one Dirichlet ``probs_<d>`` of shape (K, L_d) per item,
concatenated with the zero padding into the Deterministic ``probs``). MAP-EM's update is the
Dirichlet posterior mode ``(c_kdl + alpha - 1) / (n_k + sum_l alpha_l - L_d)``.

Bernoulli is the two-level case: binary data coded 0/1 with ``category_alpha[d] = (beta_b,
beta_a)`` (level 0 = "0", level 1 = "1") gives the numbers of the Bernoulli family.

Missing answers (``missing="model"``, code NaN) add nothing to their row's log density, in
NumPy and in the graph (whose ``x_data`` holds the valid code 0 there, multiplied by the
mask); the number of levels of an item is its largest observed code + 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any, override

import numpy as np
import pandas as pd
import scipy.sparse

from bayesmix._validation import DataError, ParameterError, _fmt_value, check_X
from bayesmix.families._base import (
    Family,
    chunk_rows,
    fill_missing,
    mixture_logp_graph,
    stack_draws,
    take_components,
)

__all__ = ["CategoricalFamily", "encode_items", "pad_probs"]

_TINY = np.finfo(float).tiny


def _numeric_codes(
    values: np.ndarray, j: int, name: str, n_levels: int | None, allow_nan: bool = False
) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    bad = np.isinf(values) if allow_nan else ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{name} contains {int(bad.sum())} missing or infinite value(s) in column {j} "
            f"(first at row {i}): expected a level in every cell; drop or impute those rows"
        )
    values_nan = values
    values = np.where(np.isnan(values), 0.0, values) if allow_nan else values
    if (values < 0).any():
        i = int(np.flatnonzero(values < 0)[0])
        raise DataError(
            f"Negative values in data {name}: expected integer codes 0, 1, ..., L-1, got "
            f"{_fmt_value(values[i])} at row {i}, column {j}; recode the column or pass it as "
            "strings / a pandas categorical"
        )
    bad = values != np.floor(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"categorical items need integer codes 0, 1, ..., L-1: expected non-negative "
            f"integers, got {_fmt_value(values[i])} at row {i}, column {j} of {name}; recode "
            "the column or pass it as strings / a pandas categorical"
        )
    if n_levels is not None and values.max() >= n_levels:
        i = int(np.flatnonzero(values >= n_levels)[0])
        raise DataError(
            f"unseen level in column {j} of {name}: expected a code in 0..{n_levels - 1} (the "
            f"levels seen in fit), got {_fmt_value(values[i])} at row {i}; refit with every "
            "level or drop those rows"
        )
    return values_nan


def _column(X: Any, j: int):
    if isinstance(X, pd.DataFrame):
        return X.iloc[:, j]
    return X[:, j]


def encode_items(
    X: Any, categories: list[np.ndarray] | None = None, name: str = "X", allow_nan: bool = False
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Codes (N, D) as float64 and the levels of each item.

    Numeric columns must hold integer codes ``0, 1, ...`` (levels ``0 .. max``); pandas
    categorical columns keep their categories (unobserved ones included); string / object
    columns get their sorted distinct values. With ``categories`` (from a fit) the values are
    looked up in them, and a value not among them is a DataError ("unseen level").
    ``allow_nan``: a missing cell (NaN, None, NA) is a missing value, code NaN
    (``missing="model"``); otherwise it is a DataError.
    """
    if scipy.sparse.issparse(X):
        check_X(X, name=name)  # TypeError: sparse input is not supported
    if not isinstance(X, pd.DataFrame):
        arr = np.asarray(X)
        if arr.dtype.kind in "biuf":
            # shapes, NaN/inf, the "Reshape your data" message
            arr = check_X(arr, name=name, allow_nan=allow_nan)
        elif arr.ndim != 2:
            check_X(np.zeros(arr.shape), name=name)  # same dimension errors as numbers get
        X = arr
    n, d = X.shape
    if n == 0 or d == 0:
        check_X(np.zeros((n, d)), name=name)
    codes = np.empty((n, d), dtype=np.float64)
    levels: list[np.ndarray] = []
    for j in range(d):
        col = _column(X, j)
        known = None if categories is None else categories[j]
        dtype = getattr(col, "dtype", None)
        if isinstance(dtype, pd.CategoricalDtype):
            if col.isna().any() and not allow_nan:
                raise DataError(
                    f"{name} has missing values in column {j}: expected a level in every cell; "
                    "drop or impute those rows"
                )
            if known is None:
                known = np.asarray(dtype.categories, dtype=object)
            col = col.astype(object)
        values = np.asarray(col)
        if values.dtype.kind in "biuf" and (known is None or known.dtype.kind in "iu"):
            numeric = _numeric_codes(
                values, j, name, None if known is None else len(known), allow_nan
            )
            if known is None:
                known = np.arange(int(np.nanmax(numeric)) + 1)
            codes[:, j] = numeric
            levels.append(known)
            continue
        values = values.astype(object)
        missing = pd.isna(values)
        if missing.any() and not allow_nan:
            raise DataError(
                f"{name} has {int(missing.sum())} missing value(s) in column {j} (first at row "
                f"{int(np.flatnonzero(missing)[0])}): expected a level in every cell; drop or "
                "impute those rows"
            )
        if known is None:
            seen = set(values[~missing].tolist())
            try:
                known = np.array(sorted(seen), dtype=object)
            except TypeError:  # mixed types: sort by their text
                known = np.array(sorted(seen, key=str), dtype=object)
        lookup = {v: i for i, v in enumerate(known.tolist())}
        col_codes = np.fromiter((lookup.get(v, -1) for v in values.tolist()), float, n)
        col_codes[missing] = np.nan
        if (col_codes < 0).any():
            i = int(np.flatnonzero(col_codes < 0)[0])
            raise DataError(
                f"unseen level in column {j} of {name}: expected one of the levels seen in fit "
                f"({', '.join(map(str, known.tolist()[:10]))}), got {_fmt_value(values[i])} "
                f"at row {i}; refit with every level or drop those rows"
            )
        codes[:, j] = col_codes
        levels.append(known)
    return codes, levels


def pad_probs(category_probs: list[np.ndarray]) -> np.ndarray:
    """List of D arrays (..., K, L_d) -> (..., K, D, L_max) padded with zeros."""
    l_max = max(p.shape[-1] for p in category_probs)
    lead = category_probs[0].shape[:-1]
    out = np.zeros((*lead, len(category_probs), l_max))
    for d, p in enumerate(category_probs):
        out[..., d, : p.shape[-1]] = p
    return out


def _n_levels(X: np.ndarray) -> np.ndarray:
    """Number of levels (D,) of each item of codes (N, D): the largest observed code + 1."""
    return np.nanmax(np.asarray(X, dtype=float), axis=0).astype(int) + 1


def _levels_from_alpha(alpha: np.ndarray) -> np.ndarray:
    """Number of levels of each item: the positive entries of the (D, L_max) prior array."""
    return (np.asarray(alpha) > 0).sum(axis=-1).astype(int)


def _graph_logp(value, w, probs, mask=None, labels=None):
    """``logsumexp_k [log w_k + sum_d log probs[k, d, x_d]]`` (one label per row).

    With ``mask`` (N, D), 1 where answered (``value`` holds the valid code 0 where missing),
    a missing answer adds nothing to its row's sum; ``labels``: see
    :func:`~bayesmix.families._base.mixture_logp_graph`.
    """
    import pytensor.tensor as pt

    k, d, l_max = probs.shape[-3], probs.shape[-2], probs.shape[-1]
    w = w.reshape((k,))
    probs = probs.reshape((k, d, l_max))
    log_p = pt.log(pt.maximum(probs, _TINY))  # padded zeros are never picked
    codes = pt.cast(value, "int64")  # (N, D)
    items = pt.arange(d)[None, :]
    terms = log_p[:, items, codes]  # (K, N, D)
    if mask is not None:
        terms = terms * mask[None]
    comp = pt.sum(terms, axis=-1).T  # (N, K)
    return mixture_logp_graph(w, comp, labels)


def _graph_random(w, probs, rng=None, size=None):
    from bayesmix.families import graph_draw

    return graph_draw(
        CategoricalFamily(), {"w": w, "probs": probs}, {"w": 1, "probs": 3}, rng, size
    )


class CategoricalFamily(Family):
    """Mixtures of independent categorical items (latent class analysis)."""

    name = "categorical"
    title = "Categorical (latent class)"
    em_class = "CategoricalMixtureEM"
    prior_fields = ("category_alpha",)
    observed_dtype = np.int64
    plots = ("item_profiles",)
    text_features = True
    nominal = True
    supports_missing = True
    graph_labels = True
    trace_variables = ("w", "probs")
    ppc_style = "counts"

    @override
    def variables(self, covariance, n_features):
        return {"probs": ("component", "feature", "level")}

    @override
    def check_data(
        self, X, *, n_components=None, covariance=None, fitting=True, name="X", allow_nan=False
    ):
        if np.ndim(X) == 1 and not isinstance(X, pd.DataFrame):
            X = np.asarray(X).reshape(-1, 1)
        codes, _ = encode_items(X, name=name, allow_nan=allow_nan)
        if fitting and n_components is not None:
            check_X(codes, name=name, n_components=n_components, allow_nan=allow_nan)
        elif allow_nan:
            check_X(codes, name=name, allow_nan=True)  # a row with every answer missing
        return codes

    @override
    def replicate_dtype(self, X):
        return np.int64

    @override
    def data_attrs(self, X, feature_names):
        import json

        if np.ndim(X) == 1 and not isinstance(X, pd.DataFrame):
            X = np.asarray(X).reshape(-1, 1)
        _, levels = encode_items(X, allow_nan=True)  # validated data: NaN = missing answers
        named = {str(f): [str(v) for v in lv] for f, lv in zip(feature_names, levels, strict=True)}
        return {"levels": json.dumps(named)}

    @override
    def graph_key(self, X):
        return tuple(int(v) for v in _n_levels(X))

    @override
    def coords(self, X, feature_names):
        return {"level": np.arange(int(_n_levels(X).max()))}

    @override
    def resolve_priors(self, priors, X, n_components, covariance, sample_weight=None):
        alpha = getattr(priors, "category_alpha", None)
        alpha = 1.0 if alpha is None else float(alpha)
        n_levels = _n_levels(X)
        out = np.zeros((len(n_levels), int(n_levels.max())))
        for d, n_l in enumerate(n_levels):
            out[d, :n_l] = alpha
        return {"category_alpha": out}

    @override
    def component_log_density(self, X, params: Mapping[str, Any]) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        observed = ~np.isnan(X)  # a NaN code is a missing answer: it adds nothing
        codes = np.where(observed, X, 0).astype(np.intp)
        lead = np.asarray(params["w"]).shape[:-1]
        (probs,) = stack_draws(params, ("probs",), lead, {"probs": 3})  # (S, K, D, L)
        with np.errstate(divide="ignore"):
            log_p = np.log(probs)
        out = np.zeros((probs.shape[0], codes.shape[0], probs.shape[1]))
        for d in range(codes.shape[1]):
            term = np.swapaxes(log_p[:, :, d, codes[:, d]], 1, 2)
            if not observed[:, d].all():
                term = np.where(observed[:, d][None, :, None], term, 0.0)
            out += term
        return out.reshape(lead + out.shape[1:])

    @override
    def draw(self, params, z, rng):
        rows = np.arange(z.shape[0])[:, None]
        q = np.asarray(params["probs"], float)[rows, z]  # (S, n, D, L)
        cdf = np.cumsum(q, axis=-1)
        cdf /= cdf[..., -1:]
        u = rng.random(q.shape[:-1] + (1,))
        return (u >= cdf).sum(axis=-1).astype(np.int64)

    @override
    def conditional_fill(self, params, X, z, rng=None):
        """Missing answers from the component's level probabilities (items are independent).

        ``rng`` None: the expected code ``sum_l l probs[z, d, l]``, as the base contract's
        ``E[x_m | x_o, z]`` (what :func:`bayesmix.inference.impute` and
        ``MixtureClassifier.impute`` average over components and draws; for two levels it is
        the Bernoulli family's ``p``). It is a number, not a level: meaningful for ordered
        codes only; for a level take the most frequent value of ``impute(method="draws")``.
        With ``rng``: a level drawn from ``probs[z, d]``.
        """
        if rng is None:
            q = take_components(params["probs"], z)  # (S, n, D, L)
            values = q @ np.arange(q.shape[-1], dtype=float)
        else:
            values = self.draw(params, z, rng).astype(float)
        return fill_missing(X, values)

    @override
    def n_parameters(self, n_components, n_features, covariance, n_levels=None):
        """Free parameters; ``n_levels`` (D,) the levels per item (required)."""
        if n_levels is None:
            raise ParameterError(
                "n_levels is missing: expected the number of levels of each item, got None; "
                "pass n_levels=(L_1, ..., L_D) (CategoricalMixtureEM.n_levels_)"
            )
        n_levels = np.broadcast_to(np.asarray(n_levels, int), (n_features,))
        return int(n_components * int((n_levels - 1).sum()) + n_components - 1)

    @override
    def label_features(self, params):
        p = np.clip(np.asarray(params["probs"], float), 1e-9, 1.0)
        return np.log(p).reshape(p.shape[:-2] + (-1,))

    @override
    def marginal(self, params, j):
        return {
            "w": np.asarray(params["w"]),
            "probs": np.asarray(params["probs"])[..., j : j + 1, :],
        }

    @override
    def order_key(self, point):
        probs = np.asarray(point["probs"], float)
        return probs[:, 0, :] @ np.arange(probs.shape[-1])  # expected code of item 0

    # ------------------------------------------------------------------ EM
    @override
    def em_point(self, estimator, n_features):
        return {"w": np.asarray(estimator.weights_, float), "probs": estimator.probs_}

    # ------------------------------------------------------------------ graph
    @override
    def add_to_graph(self, spec, priors, n_features, w, observed, formulation="custom", rows=None):
        import pymc as pm
        import pytensor.tensor as pt

        alpha = priors["category_alpha"]
        value = alpha.get_value() if hasattr(alpha, "get_value") else alpha
        n_levels = _levels_from_alpha(value)
        k = spec.n_components
        l_max = int(np.shape(value)[-1])
        items = []
        for d, n_l in enumerate(n_levels):
            p_d = pm.Dirichlet(f"probs_{d}", a=alpha[d, :n_l], shape=(k, int(n_l)))
            if n_l < l_max:
                p_d = pt.concatenate([p_d, pt.zeros((k, l_max - int(n_l)))], axis=1)
            items.append(p_d)
        probs = pm.Deterministic(
            "probs", pt.stack(items, axis=1), dims=("component", "feature", "level")
        )
        logp = _graph_logp
        if rows is not None:  # missing answers (x_data holds code 0 there) and labels
            logp = partial(_graph_logp, mask=rows.mask(), labels=rows.labels())
        pm.CustomDist(
            "x",
            w,
            probs,
            logp=logp,
            random=_graph_random,
            signature="(k),(k,d,l)->(d)",
            **observed,
        )

    @override
    def free_var_names(self, spec, n_features):
        return [f"probs_{d}" for d in range(n_features)]

    @override
    def point_to_initvals(self, spec, point, n_features):
        probs = np.asarray(point["probs"], float)
        out = {}
        for d in range(n_features):
            p = probs[:, d, :]
            n_l = int(np.flatnonzero(p.max(axis=0) > 0)[-1]) + 1  # trailing zeros: padding
            p = np.maximum(p[:, :n_l], 1e-6)
            out[f"probs_{d}"] = p / p.sum(axis=1, keepdims=True)
        return out

    @override
    def default_point(self, spec, X):
        k = spec.n_components
        X = np.asarray(X, dtype=float)
        observed = ~np.isnan(X)  # a missing answer is left out of the counts
        codes = np.where(observed, X, 0.0).astype(np.intp)
        chunks = chunk_rows(X, k)
        probs = []
        for d, n_l in enumerate(_n_levels(X)):
            counts = np.stack(
                [np.bincount(codes[c, d][observed[c, d]], minlength=n_l) for c in chunks]
            )
            counts = counts + 0.5
            probs.append(counts / counts.sum(axis=1, keepdims=True))
        return {"probs": pad_probs(probs)}
