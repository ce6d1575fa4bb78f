"""Marginal likelihood ``log p(y | K)`` with its Monte Carlo error, ``p(K | y)``, Bayes factors.

With an exchangeable prior (the same prior for every component, equal Dirichlet
concentrations) the posterior of a K-component mixture has K! symmetric copies, one per
labelling, and NUTS stays in one of them. Two bridge-sampling estimators deal with that.

Method ``"bridge_symmetric"`` (the default for K <= 7): the exchangeable model, symmetrised
proposal
----------------------------------------------------------------------------------------
Fruehwirth-Schnatter (2004, section 3.2; 2019): the proposal is made as symmetric as the
posterior, ``g(theta) = (1/K!) sum_P N(A_P theta; m, S)`` over every relabelling P. In the
model's unconstrained coordinates a relabelling is linear: per-component blocks (dims
``component``) are permuted, and the weights' simplex coordinates (PyMC's
``SimplexTransform``, the first K - 1 centred log ratios) map to the permuted centred log
ratios; each ``A_P`` has determinant +-1 (a finite group of linear maps), so every term is a
density and ``g`` is one. Before it is used, the map is checked: the model's log density at
a relabelled point equals the one at the point.

1. NUTS (nutpie) samples the exchangeable model; the unconstrained draws are kept.
2. The first half of each chain, each draw relabelled to the one labelling that is closest to
   the running mean (standardised distance, three passes), fits ``m`` and ``S``; the second
   half (``N1`` draws) and ``N2 = N1`` draws of ``N(m, S)`` (which have the same law as draws
   of ``g`` for every symmetric function, and the estimator uses only symmetric ones) enter
   the iterative bridge estimator of Meng & Wong (1996, eq. 4.1) with the optimal bridge
   function, as in Gronau et al. (2017) and the R package ``bridgesampling``; ``q`` is the
   model's log density with the transforms' Jacobians (PyMC's ``model.logp(jacobian=True)``:
   every normalising constant included).
3. The error is the relative mean squared error of Fruehwirth-Schnatter (2004, eq. 16):
   ``RE^2 = Var_g(f1) / (N2 E_g(f1)^2) + tau_f2 Var_p(f2) / (N1 E_p(f2)^2)`` with
   ``f1 = p / (s1 p + s2 g)`` over the proposal draws, ``f2 = g / (s1 p + s2 g)`` over the
   posterior draws (``p = q / Z``) and ``tau_f2 = N1 / ESS(f2)`` the integrated
   autocorrelation time of the posterior part (ArviZ's bulk ESS over the chains). The
   standard error of ``log Z`` is ``sqrt(RE^2)`` (delta method). R-hat is computed on the
   relabelled draws; above 1.05 the chains sit in different modes (e.g. two ways to split
   the data), the estimate depends on how many chains went to each, more than ``se`` says,
   and a ``RuntimeWarning`` says so.

Unlike the ordered model below, an empty component of an overfitted mixture moves freely
here (in the ordered model it cannot pass a filled one, so each gap it may sit in is a mode
of its own that the chains do not leave): on the galaxy data the standard error at K = 6
falls from 0.29-0.71 nats to 0.04-0.08 (``validation/marginal_likelihood.py``). The sum
has K! terms, so it is used up to K = 7 (5,040).

Method ``"bridge_ordered"`` (the default for K >= 8): the ordered model
---------------------------------------------------------------------
The model with the first feature's means ordered (``ModelSpec(ordered=True)``, PyMC's
ordered transform) has as unnormalised density the *restriction* of the exchangeable one to
``mu_1 < ... < mu_K``, without a K! factor; that region is one of K! congruent pieces, so its
evidence is ``Z_ordered = Z / K!`` and ``log p(y | K) = log Z_ordered + log K!``. Steps 1-3
as above with one normal proposal and no relabelling. Its error grows with the number of
empty or duplicated components.

``method="importance"`` is a third estimator for checks, on the ordered model: importance
sampling with a defensive mixture of two multivariate t proposals (4 degrees of freedom)
centred on the posterior draws (90 % at the posterior scale, 10 % at twice that scale),
independent draws, standard error by the delta method on the mean of the weights.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from bayesmix._validation import ParameterError

__all__ = ["EvidenceResult", "evidence_spec", "log_evidence", "posterior_k"]

METHODS = ("bridge", "bridge_symmetric", "bridge_ordered", "importance")
#: the largest K whose K! relabellings the symmetric bridge sums over (7! = 5040)
MAX_SYMMETRIC_K = 7
#: above this R-hat the chains sit in different modes: ``log_evidence`` warns
MAX_RHAT = 1.05


@dataclasses.dataclass(frozen=True)
class EvidenceResult:
    """An estimate of ``log p(y | K)`` and how it was obtained.

    Attributes
    ----------
    n_components : int
    log_evidence : float
        ``log p(y | K)`` of the exchangeable (unordered) model, natural log.
    se : float
        Monte Carlo standard error of ``log_evidence``.
    method : str
        The estimator used: ``"bridge_symmetric"``, ``"bridge_ordered"`` or
        ``"importance"``.
    n_posterior : int
        Posterior draws in the estimator (bridge: the second halves of the chains).
    n_proposal : int
        Draws from the proposal.
    iterations : int
        Iterations of the bridge estimator (0 for importance sampling).
    ess_posterior : float
        Bulk ESS of the bridge's posterior terms ``f2`` (nan for importance sampling).
    ess_proposal : float
        Importance sampling: Kish's effective sample size of the weights; bridge: nan.
    rhat_max : float
        Largest rank-normalised split R-hat of the unconstrained NUTS draws (relabelled
        for the symmetric bridge).
    n_divergent : int
        Divergent NUTS transitions.
    log_k_factorial : float
        ``log K!`` added to the ordered model's estimate; 0 for the symmetric bridge,
        which estimates the exchangeable model's evidence directly.
    seconds : float
        Wall time of the estimate (sampling included).
    """

    n_components: int
    log_evidence: float
    se: float
    method: str
    n_posterior: int
    n_proposal: int
    iterations: int
    ess_posterior: float
    ess_proposal: float
    rhat_max: float
    n_divergent: int
    log_k_factorial: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict (one row of a table)."""
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------
# the ordered model and its draws


def _exchangeable_spec(spec):
    """The spec, unordered; refuses other families and priors that are not exchangeable."""
    from bayesmix.families import get_family

    if not get_family(spec.family).orderable:
        raise ParameterError(
            f"log_evidence needs components that can be ordered: expected a family with "
            f"ordered means (e.g. 'gaussian'), got family={spec.family!r}; use a Gaussian "
            "mixture"
        )
    weights = getattr(spec.priors, "weights", "dirichlet")
    if weights != "dirichlet":
        raise ParameterError(
            f"log_evidence needs a finite mixture with a Dirichlet prior: expected [priors] "
            f"weights = 'dirichlet', got {weights!r}; compare K with fixed-K Dirichlet models"
        )
    alpha = spec.priors.weights_alpha
    if alpha is not None and np.ndim(alpha) > 0 and not np.allclose(alpha, np.ravel(alpha)[0]):
        raise ParameterError(
            "log_evidence needs an exchangeable prior: expected one Dirichlet concentration "
            f"for every component, got weights_alpha={list(np.ravel(alpha))}; give one number"
        )
    return dataclasses.replace(spec, ordered=False)


def resolve_method(method: str, n_components: int) -> str:
    """The estimator ``method`` stands for at K components (``"bridge"`` picks one)."""
    if method not in METHODS:
        raise ParameterError(
            f"method must be one of {list(METHODS)}: got {method!r}; use 'bridge'"
        )
    if method == "bridge":
        return "bridge_symmetric" if n_components <= MAX_SYMMETRIC_K else "bridge_ordered"
    if method == "bridge_symmetric" and n_components > MAX_SYMMETRIC_K:
        raise ParameterError(
            f"method='bridge_symmetric' sums over K! relabellings: expected K <= "
            f"{MAX_SYMMETRIC_K}, got K = {n_components}; use method='bridge'"
        )
    return method


def evidence_spec(spec: Any, method: str = "bridge") -> Any:
    """The model spec ``log_evidence`` samples for ``spec`` (ordered or not).

    ``select_k`` fits its LOO models with it, so that each K compiles once.
    """
    from bayesmix.inference._tree import as_model_spec

    m = _exchangeable_spec(as_model_spec(spec))
    if resolve_method(method, m.n_components) == "bridge_symmetric":
        return m
    return dataclasses.replace(m, ordered=True)


def _start(spec, cm, Xc, missing: str = "error") -> np.ndarray:
    """Unconstrained start: the MAP-EM solution of the spec, as :func:`sample_nuts` starts."""
    from bayesmix.inference._fit import _init_point

    return cm.to_unconstrained(_init_point("em", None, spec, cm, Xc, missing=missing))


@dataclasses.dataclass(frozen=True)
class _Run:
    """A checked :func:`log_evidence` call up to its NUTS run: the model, its start, settings.

    ``select_k`` makes one too, so that its PSIS-LOO and the estimate share one NUTS run
    (:func:`_nuts_trace`) of the very model and start ``log_evidence`` would sample.
    """

    cm: Any  # CompiledMixture of the sampled model (ordered or not, as ``method`` needs)
    method: str
    init: np.ndarray  # (n_dim,) unconstrained start
    draws: int
    tune: int
    chains: int
    seed: int
    target_accept: float
    n_proposal: int | None

    @property
    def nuts(self) -> tuple:
        """The arguments of :func:`_nuts_trace` and :func:`_nuts_draws`."""
        return (
            self.cm,
            self.init,
            self.draws,
            self.tune,
            self.chains,
            self.seed,
            self.target_accept,
        )


def _prepare_run(
    spec, X, *, draws, tune, chains, random_seed, method, n_proposal, target_accept, missing
) -> _Run:
    """Check the arguments of :func:`log_evidence`, compile (cached) and start its model."""
    from bayesmix.inference import get_compiled
    from bayesmix.inference._tree import as_model_spec, check_int, resolve_seed

    base = _exchangeable_spec(as_model_spec(spec))
    method = resolve_method(method, base.n_components)
    draws = check_int(draws, "draws", 4)
    tune = check_int(tune, "tune", 0)
    chains = check_int(chains, "chains", 1)
    if n_proposal is not None:
        n_proposal = check_int(n_proposal, "n_proposal", 2)
    seed = resolve_seed(random_seed)
    m = base if method == "bridge_symmetric" else dataclasses.replace(base, ordered=True)
    cm = get_compiled(m, X, missing=missing)
    init = _start(m, cm, cm.X, missing)
    return _Run(cm, method, init, draws, tune, chains, seed, target_accept, n_proposal)


def _nuts_trace(cm, init, draws, tune, chains, seed, target_accept):
    """The nutpie trace: ``posterior`` (result variables) and the unconstrained draws.

    Started as :func:`bayesmix.inference.sample_nuts` starts (MAP-EM, U(-0.1, 0.1) jitter),
    so its ``posterior`` is the one ``sample_nuts`` gives for the same seed.
    """
    import nutpie

    backend = cm.nutpie_backend(chains * (draws + tune) * 16)
    compiled = cm.nutpie_model(init, jitter=0.1, backend=backend)
    return nutpie.sample(
        compiled,
        draws=draws,
        tune=tune,
        chains=chains,
        cores=cm.nutpie_cores(backend, chains),
        seed=seed,
        progress_bar=False,
        target_accept=target_accept,
        store_unconstrained=True,
    )


def _unconstrained(trace) -> tuple[np.ndarray, float, int]:
    """Unconstrained draws (chain, draw, n_dim), max R-hat, divergences of a trace."""
    stats = trace["sample_stats"].to_dataset()
    theta = np.asarray(stats["unconstrained_draw"], dtype=float)  # (chain, draw, n_dim)
    if theta.ndim == 2:
        theta = theta[:, :, None]
    n_div = int(np.asarray(stats["diverging"]).sum()) if "diverging" in stats else 0
    return theta, _rhat_max(theta), n_div


def _nuts_draws(cm, init, draws, tune, chains, seed, target_accept):
    """Unconstrained NUTS draws (chain, draw, n_dim), max R-hat, divergences."""
    return _unconstrained(_nuts_trace(cm, init, draws, tune, chains, seed, target_accept))


def _rhat_max(theta: np.ndarray) -> float:
    """Largest rank-normalised split R-hat over the coordinates of (chain, draw, n_dim)."""
    import arviz as az

    if not theta.shape[-1] or theta.shape[0] < 2:
        return float("nan")
    return float(np.nanmax(np.asarray(az.rhat(theta), dtype=float)))


def _log_density(cm, theta: np.ndarray) -> np.ndarray:
    """The model's log density with the transforms' Jacobians at each row of ``theta``."""
    out = np.empty(theta.shape[0])
    for i, row in enumerate(theta):
        out[i] = cm.logp_grad(row, jacobian=True)[0]
    return out


# ---------------------------------------------------------------------------------------------
# relabellings as linear maps of the unconstrained vector


def relabelling_maps(cm: Any) -> np.ndarray:
    """Every relabelling of the components as a matrix acting on the unconstrained vector.

    Parameters
    ----------
    cm : CompiledMixture
        An exchangeable (unordered) model.

    Returns
    -------
    ndarray of shape (K!, n_dim, n_dim)
        ``A[i] @ theta`` is ``theta`` with its components relabelled by the i-th permutation
        of ``itertools.permutations(range(K))`` (the identity first). Free variables whose
        dims start with ``component`` are permuted along that axis; the weights' simplex
        coordinates (the first K - 1 centred log ratios) map linearly; the rest stay.
        A free variable without dims whose leading axis has length K (an LKJ factor per
        component) counts as per-component; :func:`_check_relabelling` tests the result.
    """
    import itertools

    from pymc.distributions.transforms import SimplexTransform

    model = cm.model
    k = cm.spec.n_components
    blocks = []  # (start, size, kind, shape)
    start = 0
    for rv in model.free_RVs:
        name = model.rvs_to_values[rv].name
        size, shape = cm._sizes[name], cm._shapes[name]
        dims = model.named_vars_to_dims.get(rv.name) or ()
        per_component = (bool(dims) and dims[0] == "component") or (
            not dims and len(shape) >= 2 and shape[0] == k
        )
        if per_component and isinstance(model.rvs_to_transforms.get(rv), SimplexTransform):
            kind = "simplex"
        else:
            kind = "axis0" if per_component else "fixed"
        blocks.append((start, size, kind, shape))
        start += size
    expand = np.vstack([np.eye(k - 1), -np.ones((1, k - 1))])  # K-1 coordinates -> K ratios
    perms = list(itertools.permutations(range(k)))
    maps = np.zeros((len(perms), start, start))
    for i, perm in enumerate(perms):
        p = np.asarray(perm)
        for s0, size, kind, shape in blocks:
            sl = slice(s0, s0 + size)
            if kind == "fixed":
                maps[i, sl, sl] = np.eye(size)
            elif kind == "axis0":
                src = np.arange(size).reshape(shape)[p].ravel()
                maps[i, s0 + np.arange(size), s0 + src] = 1.0
            else:
                maps[i, sl, sl] = expand[p][: k - 1]
    return maps


def _check_relabelling(cm: Any, maps: np.ndarray, theta: np.ndarray) -> None:
    """Raise unless the log density is the same at relabelled posterior draws."""
    rows = theta[:: max(1, theta.shape[0] // 3)][:3]
    pick = [1, maps.shape[0] - 1] if maps.shape[0] > 1 else []
    base = _log_density(cm, rows)
    for i in pick:
        moved = _log_density(cm, rows @ maps[i].T)
        if not np.allclose(moved, base, rtol=1e-8, atol=1e-8):
            raise ParameterError(
                "log_evidence: relabelling the components changed the model's log density "
                f"(by up to {np.max(np.abs(moved - base)):.3g}); the prior is not "
                "exchangeable as the model is built; use method='bridge_ordered'"
            )


def _align(theta: np.ndarray, maps: np.ndarray, passes: int = 3) -> np.ndarray:
    """Each row relabelled to the labelling closest to the running mean (standardised)."""
    out = theta
    for _ in range(passes):
        ref = out.mean(axis=0)
        sd = out.std(axis=0) + 1e-9
        best = np.empty(theta.shape[0], dtype=int)
        for a in range(0, theta.shape[0], 64):
            moved = np.einsum("pij,nj->pni", maps, theta[a : a + 64])
            best[a : a + 64] = np.argmin(np.sum(((moved - ref) / sd) ** 2, axis=-1), axis=0)
        out = np.einsum("nij,nj->ni", maps[best], theta)
    return out


def _symmetric_logpdf(x: np.ndarray, maps: np.ndarray, mean, chol) -> np.ndarray:
    """``log (1/K!) sum_P N(A_P x; mean, chol chol^T)`` at each row of ``x``."""
    from scipy.linalg import solve_triangular
    from scipy.special import logsumexp

    d = mean.shape[0]
    whiten = solve_triangular(chol, np.eye(d), lower=True)
    b = np.einsum("ij,pjk->pik", whiten, maps)
    c = whiten @ mean
    const = -np.sum(np.log(np.diag(chol))) - 0.5 * d * math.log(2.0 * math.pi)
    out = np.empty(x.shape[0])
    for a in range(0, x.shape[0], 64):
        z = np.einsum("pij,nj->pni", b, x[a : a + 64]) - c
        out[a : a + 64] = logsumexp(-0.5 * np.sum(z * z, axis=-1), axis=0)
    return out + const - math.log(maps.shape[0])


# ---------------------------------------------------------------------------------------------
# estimators on log densities (pure NumPy, usable on any target)


def _logmeanexp(a: np.ndarray) -> float:
    m = float(np.max(a))
    if not np.isfinite(m):
        return m
    return m + math.log(float(np.mean(np.exp(a - m))))


def _mvn_logpdf(x: np.ndarray, mean: np.ndarray, chol: np.ndarray) -> np.ndarray:
    from scipy.linalg import solve_triangular

    z = solve_triangular(chol, (x - mean).T, lower=True)
    d = mean.shape[0]
    return (
        -0.5 * np.sum(z * z, axis=0)
        - np.sum(np.log(np.diag(chol)))
        - 0.5 * d * math.log(2.0 * math.pi)
    )


def _mvt_logpdf(x, mean, chol, df):
    from scipy.linalg import solve_triangular
    from scipy.special import gammaln

    d = mean.shape[0]
    z = solve_triangular(chol, (x - mean).T, lower=True)
    quad = np.sum(z * z, axis=0)
    return (
        gammaln((df + d) / 2.0)
        - gammaln(df / 2.0)
        - 0.5 * d * math.log(df * math.pi)
        - np.sum(np.log(np.diag(chol)))
        - 0.5 * (df + d) * np.log1p(quad / df)
    )


def _chol(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = theta.mean(axis=0)
    cov = np.atleast_2d(np.cov(theta, rowvar=False))
    cov = cov + 1e-10 * np.eye(cov.shape[0]) * max(1.0, float(np.max(np.diag(cov))))
    return mean, np.linalg.cholesky(cov)


def bridge_estimate(
    l1: np.ndarray,
    l2: np.ndarray,
    *,
    chains: int = 1,
    tol: float = 1e-10,
    max_iter: int = 1000,
) -> tuple[float, float, int, float]:
    """Iterative bridge sampling estimate of ``log Z`` and its standard error.

    Parameters
    ----------
    l1 : ndarray of shape (N1,)
        ``log q(theta_i) - log g(theta_i)`` at the posterior draws, in chain order
        (``chains`` equal blocks; used for the autocorrelation of the posterior part).
    l2 : ndarray of shape (N2,)
        ``log q - log g`` at independent draws of the proposal ``g``.
    chains : int
        Number of equal consecutive blocks (chains) in ``l1``.
    tol : float
        Convergence on ``log Z`` between two iterations.
    max_iter : int

    Returns
    -------
    log_z : float
    se : float
        ``sqrt`` of Fruehwirth-Schnatter's (2004) relative mean squared error.
    iterations : int
    ess_f2 : float
        Bulk ESS of the posterior terms ``f2``.
    """
    import arviz as az

    n1, n2 = l1.shape[0], l2.shape[0]
    ls1, ls2 = math.log(n1 / (n1 + n2)), math.log(n2 / (n1 + n2))
    # start from the importance-sampling estimate of the proposal draws
    log_z = _logmeanexp(l2)
    iterations = 0
    while iterations < max_iter:
        iterations += 1
        num = l2 - np.logaddexp(ls1 + l2, ls2 + log_z)
        den = -np.logaddexp(ls1 + l1, ls2 + log_z)
        new = _logmeanexp(num) - _logmeanexp(den)
        done = abs(new - log_z) < tol
        log_z = new
        if done:
            break
    a = l2 - log_z  # log p/g at the proposal draws (p the normalised posterior)
    b = l1 - log_z  # and at the posterior draws
    f1 = np.exp(a - np.logaddexp(ls1 + a, ls2))
    f2 = np.exp(-np.logaddexp(ls1 + b, ls2))
    ess_f2 = float(az.ess(f2.reshape(chains, -1), method="bulk"))
    tau = n1 / ess_f2 if ess_f2 > 0 else np.inf
    re2 = np.var(f1, ddof=1) / (n2 * np.mean(f1) ** 2) + tau * np.var(f2, ddof=1) / (
        n1 * np.mean(f2) ** 2
    )
    return float(log_z), float(np.sqrt(re2)), iterations, ess_f2


def importance_estimate(log_w: np.ndarray) -> tuple[float, float, float]:
    """``log`` of the mean of importance weights, its delta-method SE, Kish's ESS.

    Parameters
    ----------
    log_w : ndarray of shape (n,)
        ``log q - log g`` at independent draws of the proposal ``g``.

    Returns
    -------
    log_z, se, ess : float
    """
    n = log_w.shape[0]
    m = float(np.max(log_w))
    w = np.exp(log_w - m)
    mean = float(np.mean(w))
    se = float(np.std(w, ddof=1) / (math.sqrt(n) * mean))
    ess = float(np.sum(w) ** 2 / np.sum(w * w))
    return m + math.log(mean), se, ess


# ---------------------------------------------------------------------------------------------
# public API


def log_evidence(
    spec: Any,
    X: Any,
    *,
    draws: int = 2000,
    tune: int = 1000,
    chains: int = 4,
    random_seed: int | None = None,
    method: str = "bridge",
    n_proposal: int | None = None,
    target_accept: float = 0.9,
    missing: str = "error",
) -> EvidenceResult:
    """Estimate ``log p(y | K)`` of a finite mixture, with its Monte Carlo standard error.

    See the module docstring for the estimators. Each (spec, data shape) compiles once per
    process (:func:`bayesmix.inference.get_compiled`; :func:`evidence_spec` names the model).

    Parameters
    ----------
    spec : ModelSpec or RunSpec
        An orderable family (Gaussian) with ``[priors] weights = "dirichlet"`` and one
        concentration for every component; ``ordered`` is set here as the method needs.
    X : array-like of shape (N, D)
    draws, tune, chains : int
        NUTS settings; the bridge uses half of each chain to fit its proposal.
    random_seed : int, optional
    method : {"bridge", "bridge_symmetric", "bridge_ordered", "importance"}
        ``"bridge"`` (default): ``"bridge_symmetric"`` (the exchangeable model, a proposal
        summed over the K! relabellings) up to K = 7, ``"bridge_ordered"`` (the ordered
        model, one normal proposal, + log K!) above; ``"importance"``: importance sampling
        of the ordered model with a defensive multivariate-t mixture fitted to all the
        posterior draws (a check; its error grows fast with the dimension).
    n_proposal : int, optional
        Proposal draws; default: as many as the bridge's posterior draws (bridge), or
        ``10 * chains * draws`` (importance).
    target_accept : float
    missing : {"error", "model"}
        ``"model"``: NaN entries of X are missing at random and summed out, so the evidence
        is ``p(y_obs | K)`` of the observed values.

    Returns
    -------
    EvidenceResult
        ``method`` says which estimator ran.
    """
    t0 = time.perf_counter()
    run = _prepare_run(
        spec,
        X,
        draws=draws,
        tune=tune,
        chains=chains,
        random_seed=random_seed,
        method=method,
        n_proposal=n_proposal,
        target_accept=target_accept,
        missing=missing,
    )
    theta, rhat_max, n_div = _nuts_draws(*run.nuts)
    return _estimate(run, theta, rhat_max, n_div, t0)


def _estimate(
    run: _Run, theta: np.ndarray, rhat_max: float, n_div: int, t0: float
) -> EvidenceResult:
    """:func:`log_evidence` from the NUTS draws of ``run``'s model.

    Parameters
    ----------
    run : _Run
    theta : ndarray of shape (chain, draw, n_dim)
        Unconstrained draws of ``run.cm`` (:func:`_nuts_draws`).
    rhat_max : float
        Their largest R-hat.
    n_div : int
        Divergent transitions.
    t0 : float
        ``time.perf_counter()`` when the work began (``seconds`` counts from it).
    """
    cm, method, seed = run.cm, run.method, run.seed
    draws, chains, n_proposal = run.draws, run.chains, run.n_proposal
    k = cm.spec.n_components
    symmetric = method == "bridge_symmetric"
    log_kfact = 0.0 if symmetric else math.lgamma(k + 1)
    rng = np.random.default_rng([seed, 15])
    d = theta.shape[-1]
    if symmetric:
        maps = relabelling_maps(cm)
        flat = theta.reshape(-1, d)
        _check_relabelling(cm, maps, flat)
        theta = _align(flat, maps).reshape(theta.shape)
        rhat_max = _rhat_max(theta)
    if np.isfinite(rhat_max) and rhat_max > MAX_RHAT:
        warnings.warn(
            f"log_evidence (K = {k}): the chains disagree (R-hat {rhat_max:.2f} > {MAX_RHAT}"
            f"{' after relabelling' if symmetric else ''}): they found different modes, and "
            "the estimate depends on how many chains went to each, more than its standard "
            "error says; run more chains (e.g. chains=8) and compare with "
            "method='importance'",
            RuntimeWarning,
            stacklevel=3,  # the caller of log_evidence
        )
    shared = {
        "n_components": k,
        "method": method,
        "rhat_max": rhat_max,
        "n_divergent": n_div,
        "log_k_factorial": log_kfact,
    }
    if method != "importance":
        half = draws // 2
        fit = theta[:, :half].reshape(-1, d)
        post = theta[:, half : 2 * half].reshape(-1, d)
        n2 = post.shape[0] if n_proposal is None else n_proposal
        mean, chol = _chol(fit)
        prop = mean + rng.standard_normal((n2, d)) @ chol.T
        if symmetric:
            log_g1 = _symmetric_logpdf(post, maps, mean, chol)
            log_g2 = _symmetric_logpdf(prop, maps, mean, chol)
        else:
            log_g1 = _mvn_logpdf(post, mean, chol)
            log_g2 = _mvn_logpdf(prop, mean, chol)
        l1 = _log_density(cm, post) - log_g1
        l2 = _log_density(cm, prop) - log_g2
        log_z, se, iters, ess_f2 = bridge_estimate(l1, l2, chains=chains)
        return EvidenceResult(
            **shared,
            log_evidence=log_z + log_kfact,
            se=se,
            n_posterior=post.shape[0],
            n_proposal=n2,
            iterations=iters,
            ess_posterior=ess_f2,
            ess_proposal=float("nan"),
            seconds=time.perf_counter() - t0,
        )
    post = theta.reshape(-1, d)
    n2 = 10 * post.shape[0] if n_proposal is None else n_proposal
    mean, chol = _chol(post)
    df = 4.0
    # defensive mixture: 90 % t at the posterior scale, 10 % at twice the scale
    scale = np.where(rng.random(n2) < 0.1, 2.0, 1.0)
    u = rng.chisquare(df, size=n2) / df
    prop = mean + (rng.standard_normal((n2, d)) @ chol.T) * (scale / np.sqrt(u))[:, None]
    chol_w = 2.0 * chol
    log_g = np.logaddexp(
        math.log(0.9) + _mvt_logpdf(prop, mean, chol, df),
        math.log(0.1) + _mvt_logpdf(prop, mean, chol_w, df),
    )
    log_z, se, ess_w = importance_estimate(_log_density(cm, prop) - log_g)
    return EvidenceResult(
        **shared,
        log_evidence=log_z + log_kfact,
        se=se,
        n_posterior=post.shape[0],
        n_proposal=n2,
        iterations=0,
        ess_posterior=float("nan"),
        ess_proposal=ess_w,
        seconds=time.perf_counter() - t0,
    )


def _as_table(table_or_results: Any) -> pd.DataFrame:
    if isinstance(table_or_results, pd.DataFrame):
        df = table_or_results.copy()
        if "k" not in df.columns and "n_components" in df.columns:
            df = df.rename(columns={"n_components": "k"})
        if "log_evidence_se" not in df.columns and "se" in df.columns:
            df = df.rename(columns={"se": "log_evidence_se"})
    else:
        items = (
            list(table_or_results.values())
            if isinstance(table_or_results, Mapping)
            else list(table_or_results)
        )
        if not items or not all(isinstance(r, EvidenceResult) for r in items):
            raise ParameterError(
                "table_or_results must be a DataFrame with columns k, log_evidence, "
                "log_evidence_se or a sequence of EvidenceResult: got "
                f"{type(table_or_results).__name__}; pass log_evidence(...) results"
            )
        df = pd.DataFrame(
            {
                "k": [r.n_components for r in items],
                "log_evidence": [r.log_evidence for r in items],
                "log_evidence_se": [r.se for r in items],
            }
        )
    missing = [c for c in ("k", "log_evidence", "log_evidence_se") if c not in df.columns]
    if missing:
        raise ParameterError(
            f"the table lacks columns {missing}: expected k (or n_components), log_evidence "
            "and log_evidence_se (or se); build it from log_evidence(...) results"
        )
    if df["k"].duplicated().any():
        raise ParameterError(f"k must be unique: got {df['k'].tolist()}; give one estimate per K")
    vals = df[["log_evidence", "log_evidence_se"]].to_numpy(float)
    if not np.all(np.isfinite(vals)) or np.any(vals[:, 1] < 0):
        raise ParameterError(
            "log_evidence and log_evidence_se must be finite, the SEs >= 0: got "
            f"{vals.tolist()}; rerun the failed estimates"
        )
    return df.sort_values("k").reset_index(drop=True)


def _log_prior(ks: np.ndarray, prior_k: Any) -> np.ndarray:
    if prior_k is None:
        return np.zeros(ks.shape[0])
    if isinstance(prior_k, Mapping):
        absent = [int(k) for k in ks if int(k) not in prior_k]
        if absent:
            raise ParameterError(
                f"prior_k has no probability for K={absent}: expected a mapping K -> prior "
                "probability for every K of the table; add them"
            )
        p = np.array([float(prior_k[int(k)]) for k in ks])
    else:
        p = np.asarray(list(prior_k) if isinstance(prior_k, Iterable) else prior_k, float)
        if p.shape != ks.shape:
            raise ParameterError(
                f"prior_k has {p.size} entries: expected {ks.size} (one per K of the table, "
                "in increasing K) or a mapping K -> probability; pass one per K"
            )
    if not np.all(np.isfinite(p)) or np.any(p <= 0):
        raise ParameterError(
            f"prior_k must be positive probabilities: got {p.tolist()}; give p(K) > 0"
        )
    return np.log(p / p.sum())


def posterior_k(
    table_or_results: Any,
    prior_k: Any = None,
    *,
    n_sim: int = 20000,
    random_seed: int = 0,
) -> pd.DataFrame:
    """Posterior probabilities of K and Bayes factors from per-K log evidences.

    ``p(K | y) = p(K) p(y | K) / sum_K' p(K') p(y | K')`` over the K of the table (the prior is
    renormalised over them). Standard errors by the delta method on the softmax,
    ``Var p_K = p_K^2 [(1 - p_K)^2 se_K^2 + sum_{j != K} p_j^2 se_j^2]`` (the estimates of
    different K are independent), and a 90 % interval by simulation from the estimates'
    normal errors.

    Parameters
    ----------
    table_or_results : DataFrame or sequence of EvidenceResult
        Columns ``k`` (or ``n_components``), ``log_evidence``, ``log_evidence_se`` (or ``se``).
    prior_k : mapping K -> float, sequence of float or None
        Prior probabilities of K (unnormalised is fine); None: uniform over the table's K.
    n_sim : int
        Simulations for the interval.
    random_seed : int

    Returns
    -------
    pandas.DataFrame
        One row per K (increasing): ``k, log_evidence, log_evidence_se, prior_k, p_k,
        p_k_se, p_k_lower, p_k_upper`` (5 % and 95 % of the simulations), ``log_bf_prev``
        (``log p(y|K) - log p(y|K_prev)``, the previous K of the table; nan on the first row)
        and ``log_bf_prev_se``.
    """
    from scipy.special import logsumexp, softmax

    df = _as_table(table_or_results)
    ks = df["k"].to_numpy(int)
    lz = df["log_evidence"].to_numpy(float)
    se = df["log_evidence_se"].to_numpy(float)
    lp = _log_prior(ks, prior_k)
    logit = lz + lp
    p = np.exp(logit - logsumexp(logit))
    var = p**2 * ((1.0 - p) ** 2 * se**2 + (np.sum(p**2 * se**2) - p**2 * se**2))
    rng = np.random.default_rng(random_seed)
    sims = softmax(logit + rng.standard_normal((n_sim, ks.size)) * se, axis=1)
    out = df[["k", "log_evidence", "log_evidence_se"]].copy()
    out["prior_k"] = np.exp(lp)
    out["p_k"] = p
    out["p_k_se"] = np.sqrt(var)
    out["p_k_lower"] = np.quantile(sims, 0.05, axis=0)
    out["p_k_upper"] = np.quantile(sims, 0.95, axis=0)
    bf = np.full(ks.size, np.nan)
    bf_se = np.full(ks.size, np.nan)
    bf[1:] = lz[1:] - lz[:-1]
    bf_se[1:] = np.sqrt(se[1:] ** 2 + se[:-1] ** 2)
    out["log_bf_prev"] = bf
    out["log_bf_prev_se"] = bf_se
    return out
