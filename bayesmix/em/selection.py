"""The BIC table over covariance models and numbers of components, as R's ``mclustBIC``.

:func:`bic_table` fits :class:`~bayesmix.em.GaussianMixtureEM` for every covariance model
(mclust's 14, or E and V for one feature) and every K, each from mclust's start (the
model-based hierarchical clustering of the data, :mod:`bayesmix.em.hc`, computed once), and
returns BIC, ICL and the log-likelihood with mclust's sign (higher is better), rows K and
columns models as ``mclustBIC`` prints them. A fit that fails (a singular covariance: mclust's
``NA``) is NaN.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bayesmix._validation import DataError, ParameterError, check_X
from bayesmix.em.covariance_models import get_model
from bayesmix.em.gaussian import GaussianMixtureEM
from bayesmix.families.gaussian import MCLUST_MODELS  # the order of mclust's table

__all__ = ["BICTable", "MCLUST_MODELS", "bic_table"]

_MODELS_1D = ("E", "V")  # one feature


@dataclass(frozen=True)
class BICTable:
    """BIC, ICL and log-likelihoods of a grid of fits (mclust's sign: higher is better).

    Each table has rows K (index ``k``) and one column per covariance model.
    """

    bic: pd.DataFrame
    icl: pd.DataFrame
    log_likelihood: pd.DataFrame
    n_parameters: pd.DataFrame
    converged: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)
    fits: dict[tuple[str, int], GaussianMixtureEM] = field(default_factory=dict, repr=False)

    def top(self, n: int = 3, criterion: str = "bic") -> list[tuple[str, int, float]]:
        """The ``n`` best (model, K, value) by ``criterion`` ("bic" or "icl")."""
        if criterion not in ("bic", "icl"):
            raise ParameterError(
                f"criterion is invalid: expected 'bic' or 'icl', got {criterion!r}; pass one "
                "of them"
            )
        table = getattr(self, criterion)
        long = table.stack().dropna().sort_values(ascending=False, kind="stable")
        return [(str(m), int(k), float(v)) for (k, m), v in long.head(n).items()]

    def best(self, criterion: str = "bic") -> tuple[str, int]:
        """The (model, K) with the highest ``criterion``."""
        top = self.top(1, criterion)
        if not top:
            raise ParameterError(
                f"no {criterion.upper()} in the table: expected at least one fit, got every "
                "cell NaN (singular covariances); use fewer components or reg_covar > 0"
            )
        model, k, _ = top[0]
        return model, k

    def estimator(self, model: str | None = None, k: int | None = None) -> GaussianMixtureEM:
        """The fitted estimator of one cell (default: the best by BIC).

        Raises ParameterError for a cell that was not fitted or whose fits all failed.
        """
        if model is None or k is None:
            best_model, best_k = self.best()
            model = best_model if model is None else model
            k = best_k if k is None else k
        est = self.fits.get((model, int(k)))
        if est is None:
            raise ParameterError(
                f"no fit for covariance model {model!r} with K={k}: expected a cell of the "
                f"table with a value, got {'NaN' if model in self.bic.columns else 'none'}; "
                "pick a model and K from the table"
            )
        return est

    def __str__(self) -> str:
        lines = ["Bayesian Information Criterion (BIC), mclust's sign (higher is better):"]
        lines.append(self.bic.to_string(float_format=lambda v: f"{v:.3f}", na_rep="NA"))
        lines.append("")
        top = self.top(3)
        lines.append("Top 3 models based on the BIC criterion:")
        lines.append("  " + "  ".join(f"{m},{k}" for m, k, _ in top))
        lines.append("  " + "  ".join(f"{v:.3f}" for _, _, v in top))
        return "\n".join(lines)


def bic_table(
    X: Any,
    ks: Iterable[int] = range(1, 10),
    covariance_types: Iterable[str] | None = None,
    *,
    init_params: str = "hc",
    n_init: int = 1,
    tol: float | str = "mclust",
    max_iter: int = 5000,
    reg_covar: float = 0.0,
    random_state: Any = None,
    sample_weight: Any = None,
) -> BICTable:
    """BIC, ICL and log-likelihood of every covariance model and K (R's ``mclustBIC``).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    ks : iterable of int, default 1..9
        Numbers of components.
    covariance_types : iterable of str, optional
        Models (mclust's names or the scikit-learn aliases). Default: mclust's 14 (EII ...
        VVV), or E and V for one feature.
    init_params : str, default "hc"
        Start of each fit: "hc", mclust's hierarchical clustering (one tree for the whole
        table, deterministic); or any other ``init_params`` of GaussianMixtureEM.
    n_init : int, default 1
        Starts per cell, each a fit of its own (a start that runs into a singular covariance
        drops out alone); with "hc" the first is the hierarchical one and the others
        k-means ("kmeans", seeded by ``random_state``); the highest likelihood is kept, so a
        cell can only improve on mclust's start.
    tol : float or "mclust", default "mclust"
        EM's stopping rule. "mclust": mclust's, a relative change of the log-likelihood
        ``|L_new - L_old| / (1 + |L_new|)`` below 1e-5, so that the table follows mclust's
        iterations from mclust's start. A float: the estimator's ``tol`` (a change of the mean
        log-likelihood per row; e.g. 1e-10 runs each fit to its optimum: fits that mclust
        stops early then end higher, and a few run on into a singular covariance, NaN).
    max_iter : int
        EM's iteration limit per fit.
    reg_covar : float, default 0.0
        As mclust: no regularisation (a fit with a singular covariance is NaN).
    random_state : None, int or Generator
        For restarts other than "hc".
    sample_weight : array-like of shape (n_samples,), optional
        Frequency weights (as ``GaussianMixtureEM.fit``).

    Returns
    -------
    BICTable
    """
    X = check_X(X, dtype=np.float64, min_samples=2)
    d = X.shape[1]
    ks = [int(k) for k in ks]
    if not ks or min(ks) < 1:
        raise ParameterError(
            f"ks must be numbers of components >= 1: expected e.g. range(1, 10), got {ks}; "
            "pass positive integers"
        )
    if covariance_types is None:
        names = list(_MODELS_1D if d == 1 else MCLUST_MODELS)
    else:
        names = list(dict.fromkeys(covariance_types))
        for name in names:
            try:
                get_model(name, d)
            except ValueError as err:
                raise ParameterError(str(err)) from None
        if not names:
            raise ParameterError(
                "covariance_types is empty: expected at least one model name; pass e.g. "
                "['EEE', 'VVV'] or None for all"
            )
    if isinstance(tol, str) and tol != "mclust":
        raise ParameterError(
            f"tol is invalid: expected a positive number or 'mclust', got {tol!r}; pass "
            "e.g. 1e-10 or 'mclust'"
        )
    settings = {
        "init_params": init_params,
        "n_init": n_init,
        "tol": tol,
        "max_iter": max_iter,
        "reg_covar": reg_covar,
        "random_state": random_state,
    }
    shape = (len(ks), len(names))
    out = {key: np.full(shape, np.nan) for key in ("bic", "icl", "ll", "npar")}
    converged = np.zeros(shape, dtype=bool)
    rng = np.random.default_rng(random_state)
    fits: dict[tuple[str, int], GaussianMixtureEM] = {}
    for j, name in enumerate(names):
        for i, k in enumerate(ks):
            if k > X.shape[0]:
                continue
            est = _best_start(X, k, name, settings, rng, sample_weight)
            if est is None:  # every start ran into a singular covariance: mclust's NA
                continue
            n = X.shape[0] if sample_weight is None else float(np.sum(sample_weight))
            out["ll"][i, j] = est.score(X, sample_weight=sample_weight) * n
            out["bic"][i, j] = est.bic(X, sample_weight, convention="mclust")
            out["icl"][i, j] = est.icl(X, sample_weight, convention="mclust")
            out["npar"][i, j] = est._n_parameters()
            converged[i, j] = est.converged_
            fits[(name, k)] = est

    def frame(values):
        return pd.DataFrame(values, index=pd.Index(ks, name="k"), columns=names)

    return BICTable(
        bic=frame(out["bic"]),
        icl=frame(out["icl"]),
        log_likelihood=frame(out["ll"]),
        n_parameters=frame(out["npar"]),
        converged=frame(converged),
        settings=settings,
        fits=fits,
    )


class _MclustStopEM(GaussianMixtureEM):
    """GaussianMixtureEM that stops as mclust's EM: ``|dL| / (1 + |L|) < 1e-5`` in total L."""

    def _fit_prepare(self, X):
        super()._fit_prepare(X)
        self._n_total = self._n_observations(X.shape[0])

    def _em_step(self, X, workspace):
        # the objective returned is that of the parameters entering the step; mclust's EM
        # (M-step, then E-step and test) stops at those parameters, not one M-step later
        self._entering = self._get_parameters()
        return super()._em_step(X, workspace)

    def _has_converged(self, change, objective):
        n = self._n_total
        if abs(change) * n <= _MCLUST_TOL * (1.0 + abs(objective) * n):
            self._set_parameters(self._entering)
            return True
        return False


_MCLUST_TOL = 1e-5  # mclust's emControl()$tol[1]


def _estimator(k: int, model: str, settings: dict) -> GaussianMixtureEM:
    options = dict(settings)
    if options.get("tol") == "mclust":
        options["tol"] = _MCLUST_TOL  # a valid number for the checks; the rule is the class's
        return _MclustStopEM(k, covariance_type=model, **options)
    return GaussianMixtureEM(k, covariance_type=model, **options)


def _best_start(X, k, model, settings, rng, sample_weight):
    """The best of ``n_init`` fits, each its own start (one failing start drops out alone)."""
    best, best_score = None, -np.inf
    for start in range(int(settings["n_init"])):
        options = {**settings, "n_init": 1, "random_state": int(rng.integers(2**31 - 1))}
        if start > 0 and options["init_params"] == "hc":
            options["init_params"] = "kmeans"  # after mclust's start, random restarts
        est = _estimator(k, model, options)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est.fit(X, sample_weight=sample_weight)
                score = est.score(X, sample_weight=sample_weight)
        except DataError:  # a singular covariance on the way
            continue
        if np.isfinite(score) and score > best_score:
            best, best_score = est, score
    return best
