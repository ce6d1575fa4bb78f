"""The interface every component family implements (:class:`Family`).

A family states everything that is specific to one kind of component distribution, so that
the rest of the package (graphs, inference, results, plotting, CLI, ``select_k``) asks the
family and never branches on its name:

==============================  ===========================================================
what                            members
==============================  ===========================================================
identity                        ``name``, ``title``, ``em_class`` (the EM estimator's name in
                                :mod:`bayesmix.em`)
settings                        ``covariances`` (accepted ``covariance`` values; ``()`` when
                                the family has none), ``orderable`` (``ordered=True``
                                allowed), ``prior_fields`` (the ``PriorSpec`` fields it reads)
result contract                 :meth:`variables` (result variable -> dims),
                                :meth:`effective_covariance`
data                            :meth:`check_data` (validation with the project's messages),
                                :meth:`replicate_dtype`, ``observed_dtype``
priors                          :meth:`resolve_priors` (data-scaled numbers; ``weights_alpha``
                                is resolved by the caller for every family)
NumPy                           :meth:`component_log_density` (stacks of draws; NaN =
                                missing where ``supports_missing``),
                                :meth:`draw` (new observations given labels),
                                :meth:`conditional_fill` (missing entries given the observed
                                ones and the labels: imputation),
                                :meth:`n_parameters` (BIC / AIC / ICL)
EM                              :meth:`em_kwargs` (estimator settings from a spec and priors),
                                :meth:`em_point` (fitted estimator -> result variables)
graph (PyMC, imported lazily)   :meth:`add_to_graph` (parameters and the observed ``x``;
                                with ``rows`` (:class:`ObservedRows`) missing entries and
                                partial labels, ending in :func:`mixture_logp_graph`),
                                ``supports_missing``, ``graph_labels``,
                                :meth:`free_var_names`, :meth:`point_to_initvals`,
                                :meth:`default_point`
plots                           ``plots``: the names of the figures that suit the family
==============================  ===========================================================

This module imports only NumPy and :mod:`bayesmix._validation`; a family module imports PyMC
and PyTensor inside :meth:`add_to_graph` only, so that ``import bayesmix.config`` stays light.

Parameters of a *stack* of mixtures (draws) are passed as a dict of arrays in result names
with the same leading shape ``(...)``: ``w`` (..., K) and the family's variables, e.g.
``mu`` (..., K, D).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "Family",
    "ObservedRows",
    "chunk_means",
    "chunk_rows",
    "data_moments",
    "fill_conditional_blocks",
    "fill_missing",
    "mixture_logp_graph",
    "normal_locations",
    "observed_block_quadratic",
    "per_feature",
    "stack_draws",
    "take_components",
]

#: Elements of the largest temporary made per block of draws in a log density.
BLOCK_ELEMENTS = 4_000_000


def stack_draws(params: Mapping[str, Any], names: tuple[str, ...], lead: tuple[int, ...], core):
    """Broadcast ``params[name]`` to ``lead + core_shape`` and flatten the leading dims.

    ``core`` maps a name to its number of trailing (core) dims. Returns a tuple of arrays
    ``(S, *core_shape)`` with ``S = prod(lead)``.
    """
    out = []
    for name in names:
        a = np.asarray(params[name], dtype=float)
        tail = a.shape[a.ndim - core[name] :]
        out.append(np.broadcast_to(a, lead + tail).reshape((-1, *tail)))
    return tuple(out)


def per_feature(value: Any, default: np.ndarray, where: str) -> np.ndarray:
    """A ``[priors]`` number or per-feature list as a (D,) array; ``None``: ``default``.

    Raises SpecError (``[priors] <where>: ...``) for a list of the wrong length.
    """
    from bayesmix._validation import SpecError

    d = default.shape[0]
    if value is None:
        return default.astype(float)
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        return np.full(d, float(arr))
    if arr.shape != (d,):
        raise SpecError(
            f"[priors] {where}: expected a number or {d} numbers (one per feature), "
            f"got {arr.shape[0]}; give one value per feature",
            name="spec",
        )
    return arr


def chunk_rows(X: np.ndarray, k: int) -> list[np.ndarray]:
    """Row indices of K chunks of the data sorted by feature 0 (an empty chunk: every row).

    The usual starting point without a fit (``Family.default_point``): one chunk per component.
    """
    order = np.argsort(np.asarray(X)[:, 0], kind="stable")
    return [c if len(c) else order for c in np.array_split(order, k)]


def chunk_means(X: np.ndarray, k: int) -> np.ndarray:
    """Feature means (K, D) of the :func:`chunk_rows` chunks (NaN entries left out)."""
    X = np.asarray(X, dtype=float)
    if not np.isnan(X).any():
        return np.stack([X[c].mean(axis=0) for c in chunk_rows(X, k)])
    observed = ~np.isnan(X)
    overall = np.nanmean(X, axis=0)  # a column with no observed value in a chunk: its mean

    def mean(rows):
        seen = observed[rows].sum(axis=0)
        total = np.where(observed[rows], X[rows], 0.0).sum(axis=0)
        return np.where(seen > 0, total / np.maximum(seen, 1), overall)

    return np.stack([mean(c) for c in chunk_rows(X, k)])


def data_moments(
    X: np.ndarray, sample_weight: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    """Feature means, standard deviations (ddof 1) and the number of rows, with frequency weights.

    With integer weights these equal the moments of the repeated rows; a standard deviation of
    0 (or of a single row) is returned as 1 so that it can scale a prior. NaN entries (missing
    values) are left out: each feature's moments are those of its observed values; the number
    of rows counts every row.
    """
    X = np.asarray(X, dtype=float)
    if np.isnan(X).any():
        observed = ~np.isnan(X)
        w = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, float)
        wo = observed * w[:, None]
        n_d = wo.sum(axis=0)
        mean = (np.where(observed, X, 0.0) * wo).sum(axis=0) / np.maximum(n_d, 1e-300)
        dev = np.where(observed, X - mean, 0.0)
        var = np.where(n_d > 1, (wo * dev**2).sum(axis=0) / np.maximum(n_d - 1.0, 1e-300), 1.0)
        sd = np.sqrt(var)
        return mean, np.where(sd > 0, sd, 1.0), float(w.sum())
    if sample_weight is None:
        n = float(X.shape[0])
        mean = X.mean(axis=0)
        sd = X.std(axis=0, ddof=1) if X.shape[0] > 1 else np.ones(X.shape[1])
    else:
        w = np.asarray(sample_weight, dtype=float)
        n = float(w.sum())
        mean = w @ X / n
        var = w @ (X - mean) ** 2 / (n - 1.0) if n > 1 else np.ones(X.shape[1])
        sd = np.sqrt(var)
    return mean, np.where(sd > 0, sd, 1.0), n


def normal_locations(spec: Any, priors: Mapping[str, Any], n_features: int):
    """Inside a ``pm.Model``: the component locations ``mu`` (component, feature).

    ``mu[k, d] ~ Normal(prior_mu_loc[d], prior_mu_scale[d])``. With ``spec.ordered`` the first
    feature's locations are a free ``mu_first`` with PyMC's ordered transform (its density is
    the exchangeable prior restricted to increasing values, without a K! factor), the others a
    free ``mu_rest`` (component, D - 1), and ``mu`` is a Deterministic. Families with Normal
    location priors (Gaussian, Student-t) share this.
    """
    import pymc as pm
    import pytensor.tensor as pt

    d, k = n_features, spec.n_components
    mu_loc, mu_scale = priors["mu_loc"], priors["mu_scale"]
    if not getattr(spec, "ordered", False):
        return pm.Normal("mu", mu=mu_loc, sigma=mu_scale, dims=("component", "feature"))
    first = pm.Normal(
        "mu_first",
        mu=mu_loc[0],
        sigma=mu_scale[0],
        dims="component",
        transform=pm.distributions.transforms.ordered,
    )
    if d > 1:
        rest = pm.Normal("mu_rest", mu=mu_loc[1:], sigma=mu_scale[1:], shape=(k, d - 1))
        mu_val = pt.concatenate([first[:, None], rest], axis=1)
    else:
        mu_val = first[:, None]
    return pm.Deterministic("mu", mu_val, dims=("component", "feature"))


# ---------------------------------------------------------------------------------------------
# the observed rows of a graph: missing entries and partial labels


class ObservedRows:
    """The observed ``x`` of a mixture graph, row by row: values, missing entries, labels.

    NumPy side (any layer): :attr:`values` holds every ``pm.Data`` value a graph may read,
    by name (:data:`DIMS`): ``x_data`` (N, D) the data with 0.0 for a missing entry (NaN is
    never handed to PyMC, which would impute it with ``x_unobserved`` variables); with
    missing entries ``x_observed`` (N, D), 1.0 where observed, ``x_patterns`` (P, D) its
    distinct rows and ``x_pattern`` (N,) each row's pattern; with partial labels
    ``x_labels`` (N,) (-1 = unknown). The compiled-model cache swaps these in
    (``pm.set_data``), so they are data, not graph structure: a model depends only on
    whether there are missing entries and labels (:attr:`key`).

    Graph side (inside a ``pm.Model``, by :meth:`Family.add_to_graph`): :meth:`mask`,
    :meth:`labels` and :meth:`patterns` create their ``pm.Data`` on first use, so that a
    model holds only what its family's density reads.

    Parameters
    ----------
    X : ndarray of shape (N, D)
        Validated data, NaN for a missing entry.
    labels : ndarray of shape (N,), optional
        Checked partial labels, -1 = unknown (None: none known).
    """

    #: dims of each ``pm.Data`` (None: no dims).
    DIMS: ClassVar[dict[str, tuple[str, ...] | None]] = {
        "x_data": ("obs_id", "feature"),
        "x_observed": ("obs_id", "feature"),
        "x_patterns": None,
        "x_pattern": ("obs_id",),
        "x_labels": ("obs_id",),
    }

    def __init__(self, X: np.ndarray, labels: np.ndarray | None = None) -> None:
        X = np.asarray(X, dtype=float)
        observed = ~np.isnan(X)
        self.missing = not observed.all()
        self.has_labels = labels is not None
        values = {"x_data": np.where(observed, X, 0.0) if self.missing else X}
        if self.missing:
            patterns, index = np.unique(observed, axis=0, return_inverse=True)
            values["x_observed"] = observed.astype(float)
            values["x_patterns"] = patterns.astype(float)
            values["x_pattern"] = index.reshape(-1).astype(np.int64)
        if labels is not None:
            values["x_labels"] = np.asarray(labels, dtype=np.int64)
        self.values: dict[str, np.ndarray] = values
        self._tensors: dict[str, Any] = {}

    @property
    def plain(self) -> bool:
        """No missing entry and no label: the graph of complete, unlabelled data."""
        return not (self.missing or self.has_labels)

    @property
    def key(self) -> tuple[bool, bool]:
        """What of the rows fixes the graph (missing entries, labels): for the model cache."""
        return (self.missing, self.has_labels)

    def tensor(self, name: str):
        """The ``pm.Data`` of ``values[name]`` (created in the current model on first use)."""
        if name not in self._tensors:
            import pymc as pm

            self._tensors[name] = pm.Data(name, self.values[name], dims=self.DIMS[name])
        return self._tensors[name]

    def mask(self):
        """(N, D) 1.0 where observed, 0.0 where missing; None without missing entries."""
        return self.tensor("x_observed") if self.missing else None

    def labels(self):
        """(N,) int labels, -1 = unknown; None without labels."""
        return self.tensor("x_labels") if self.has_labels else None

    def patterns(self):
        """``(x_patterns (P, D), x_pattern (N,))`` of the missing entries; None without."""
        if not self.missing:
            return None
        return self.tensor("x_patterns"), self.tensor("x_pattern")


def mixture_logp_graph(w, comp, labels=None):
    """Per-row mixture log density (graph) from the component log densities ``comp`` (N, K).

    ``logsumexp_k [log w_k + comp_nk]`` (the label summed out); for a row with a known label
    ``labels_n = k >= 0``, ``log w_k + comp_nk`` (the joint density of the row and its label,
    as EM's partial labels, :func:`bayesmix.em._base.fix_labelled_rows`). Every family's
    ``CustomDist`` log density ends here.
    """
    import pymc as pm
    import pytensor.tensor as pt

    joint = pt.log(w) + comp
    total = pm.math.logsumexp(joint, axis=-1)
    if labels is None:
        return total
    known = joint[pt.arange(joint.shape[0]), pt.maximum(labels, 0)]
    return pt.switch(pt.ge(labels, 0), known, total)


def observed_block_quadratic(value, mask, mu, cov, patterns):
    """Graph terms of each row's observed block under every component (missing values).

    For row n with observed coordinates o (its pattern's mask) and component k: the
    quadratic form ``(x_o - mu_ko)^T S_koo^-1 (x_o - mu_ko)``, half the log-determinant of
    ``S_koo`` and the number of observed coordinates. One inverse and log-determinant per
    (pattern, component) of ``M S_k M + I - M`` (the observed block, the identity where
    missing), gathered per row, so a new data set with other patterns compiles nothing. Not
    Cholesky factors: the gradient of a batched Cholesky runs part of its graph in Numba's
    object mode (3x slower per evaluation on Old Faithful). Shared by the Gaussian and the
    Student-t full/tied densities.

    Parameters
    ----------
    value : (N, D) tensor, 0 where missing
    mask : (N, D) tensor, 1 where observed
    mu : (K, D) tensor
    cov : (K, D, D) tensor, the covariance (or scale) matrices themselves
    patterns : ((P, D) masks, (N,) each row's pattern)

    Returns
    -------
    quad (N, K), half_logdet (N, K), n_obs (N,)
    """
    import pytensor.tensor as pt

    d = mu.shape[-1]
    masks, pattern = patterns
    outer = masks[:, :, None] * masks[:, None, :]  # (P, D, D)
    free = pt.eye(d) * (1.0 - masks)[:, None, :]  # (P, D, D): 1 on the missing diagonal
    cov_p = cov[None] * outer[:, None] + free[:, None]  # (P, K, D, D)
    prec_p = pt.linalg.inv(cov_p)  # (P, K, D, D)
    half_logdet_p = 0.5 * pt.linalg.slogdet(cov_p)[1]  # (P, K)
    resid = mask[:, None, :] * (value[:, None, :] - mu)  # (N, K, D)
    quad = pt.sum(pt.sum(prec_p[pattern] * resid[:, :, None, :], axis=-1) * resid, axis=-1)
    return quad, half_logdet_p[pattern], pt.sum(mask, axis=-1)


def fill_missing(X: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``X`` (n, D) with its NaN entries taken from ``values`` (S, n, D): (S, n, D) floats."""
    X = np.asarray(X, dtype=float)
    return np.where(np.isnan(X), values, X)


def fill_conditional_blocks(X, z, mu_k, cov, rng=None, scale=None) -> np.ndarray:
    """``X`` (n, D) filled per draw: each row's missing block given its observed one and z.

    Within component k the missing coordinates m of a row with observed coordinates o get
    ``mu_km + S_mo S_oo^-1 (x_o - mu_ko)`` (S = ``cov[:, k]``), plus, with ``rng``, a
    normal draw of covariance ``S_mm - S_mo S_oo^-1 S_om`` times ``scale(k, o, resid, s_oo)``
    ((S, n_p) per-row factors; None: 1). One solve per (missingness pattern, component).
    Shared by the Gaussian (normal conditionals) and the Student-t (scale mixtures of them)
    ``conditional_fill``.

    Parameters
    ----------
    X : ndarray (n, D), NaN where missing
    z : ndarray (S, n) of component labels
    mu_k : ndarray (S, K, D)
    cov : ndarray (S, K, D, D)

    Returns
    -------
    ndarray (S, n, D)
    """
    out = np.broadcast_to(X, (z.shape[0], *X.shape)).copy()
    patterns, inverse = np.unique(~np.isnan(X), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    for p, pattern in enumerate(patterns):
        o, m = np.flatnonzero(pattern), np.flatnonzero(~pattern)
        rows = np.flatnonzero(inverse == p)
        if not m.size:
            continue
        x_o = X[np.ix_(rows, o)]  # (n_p, |o|)
        for k in range(cov.shape[1]):  # (S, ...) blocks of component k
            s_oo = cov[:, k][:, o[:, None], o]
            s_om = cov[:, k][:, o[:, None], m]
            gain = np.linalg.solve(s_oo, s_om)  # (S, |o|, |m|)
            resid = x_o[None] - mu_k[:, k, o][:, None, :]  # (S, n_p, |o|)
            val = mu_k[:, k, m][:, None, :] + resid @ gain  # (S, n_p, |m|)
            if rng is not None:
                cond = cov[:, k][:, m[:, None], m] - np.swapaxes(s_om, -1, -2) @ gain
                chol = np.linalg.cholesky(0.5 * (cond + np.swapaxes(cond, -1, -2)))
                eps = rng.standard_normal(val.shape) @ np.swapaxes(chol, -1, -2)
                if scale is not None:
                    eps = eps * scale(k, o, resid, s_oo)[..., None]
                val = val + eps
            hit = z[:, rows] == k  # (S, n_p)
            block = out[:, rows[:, None], m]  # (S, n_p, |m|) copy
            out[:, rows[:, None], m] = np.where(hit[..., None], val, block)
    return out


def take_components(param: Any, z: np.ndarray) -> np.ndarray:
    """``param[s, z[s, n]]``: a (S, K, ...) parameter at labels z (S, n) -> (S, n, ...)."""
    rows = np.arange(z.shape[0])[:, None]
    return np.asarray(param, dtype=float)[rows, z]


class Family:
    """Base class of the component families (one subclass per module in this package)."""

    #: Spec name (``[model] family``).
    name: ClassVar[str] = ""
    #: Human name, e.g. "Gaussian".
    title: ClassVar[str] = ""
    #: Name of the EM estimator class in :mod:`bayesmix.em`.
    em_class: ClassVar[str] = ""
    #: Accepted ``covariance`` settings; ``()`` when the family has no covariance structure.
    covariances: ClassVar[tuple[str, ...]] = ()
    #: Covariance settings of the EM estimator (``select_k``); default: ``covariances``.
    em_covariances: ClassVar[tuple[str, ...] | None] = None
    #: ``init_params`` that ``select_k`` gives the EM estimator (None: the estimator's default).
    select_init: ClassVar[str | None] = None
    #: Whether ``ordered = true`` (components ordered by the first feature's location) is allowed.
    orderable: ClassVar[bool] = False
    #: Whether the family models missing values (``missing="model"``): ``check_data`` takes
    #: ``allow_nan``, ``component_log_density`` and the graph's density use each row's observed
    #: coordinates, :meth:`conditional_fill` fills the others.
    supports_missing: ClassVar[bool] = False
    #: Whether the graph takes partial labels (:meth:`add_to_graph`'s ``rows``, through
    #: :func:`mixture_logp_graph`).
    graph_labels: ClassVar[bool] = False
    #: ``PriorSpec`` fields the family reads (besides ``weights_alpha``).
    prior_fields: ClassVar[tuple[str, ...]] = ()
    #: Whether text columns of a table are features (categorical levels) rather than left out.
    text_features: ClassVar[bool] = False
    #: Whether the values are nominal codes (categorical levels): a filled-in missing value is
    #: then reported as its most probable level, not as a mean (``bayesmix fit``'s imputed.csv).
    nominal: ClassVar[bool] = False
    #: dtype of the stored ``observed_data`` (float64, or int64 for discrete data).
    observed_dtype: ClassVar[type] = np.float64
    #: Data views that suit the family, in the order drawn (``bayesmix.plotting.plot_plan``):
    #: "clusters" (1-D densities or 2-D ellipses), "images" (square binary images),
    #: "membership_uncertainty", "counts" (count histograms with the fitted pmf), ...
    #: The fit's own figures (EM history, trace, rank, PPC) are drawn for every family.
    plots: ClassVar[tuple[str, ...]] = ()
    #: Legend text of the n-th ellipse of the 2-D cluster plot (``{n}``: 1 or 2): the
    #: contour at Mahalanobis distance n of the component's ``cov``.
    ellipse_unit: ClassVar[str] = "{n} sd"
    #: Posterior variables shown by default in trace and rank plots (``w`` first).
    trace_variables: ClassVar[tuple[str, ...]] = ("w",)
    #: How the PPC figure compares data: "density" (continuous), "frequency" (binary: the
    #: frequency of ones per feature), "counts" (the frequency of each count).
    ppc_style: ClassVar[str] = "density"

    # ------------------------------------------------------------------ settings / contract
    def effective_covariance(self, covariance: str | None, n_features: int) -> str | None:
        """The covariance structure actually built (None for families without one)."""
        return None

    def all_em_covariances(self, n_features: int) -> tuple[str, ...]:
        """The EM covariance settings that ``bayesmix select --covariance all`` compares."""
        return self.em_covariances or self.covariances

    def variables(self, covariance: str | None, n_features: int) -> dict[str, tuple[str, ...]]:
        """Result variables (besides ``w``) and their dims, without chain/draw."""
        raise NotImplementedError

    def covariance_label(self, covariance: str | None, n_features: int) -> str:
        """Text such as ``"covariance=full, "`` for headers ('' when there is none)."""
        cov = self.effective_covariance(covariance, n_features)
        return f"covariance={covariance}, " if cov is not None else ""

    # ------------------------------------------------------------------ data
    def check_data(
        self,
        X: Any,
        *,
        n_components: int | None = None,
        covariance: str | None = None,
        fitting: bool = True,
        name: str = "X",
        allow_nan: bool = False,
    ) -> np.ndarray:
        """Validate data for this family; return a float array (N, D). 1-D input is one feature.

        ``name`` names the data in error messages (e.g. ``"data three.csv"``). ``allow_nan``
        (families with :attr:`supports_missing` only; callers pass it only there): NaN
        entries are missing values (``check_X(allow_nan=True)``).
        """
        raise NotImplementedError

    def replicate_dtype(self, X: np.ndarray) -> type:
        """The dtype of replicated data sets (posterior predictive)."""
        return np.float64

    # ------------------------------------------------------------------ priors
    def resolve_priors(
        self,
        priors: Any,
        X: np.ndarray,
        n_components: int,
        covariance: str | None,
        sample_weight: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """The family's prior numbers, ``None`` fields of ``priors`` scaled to ``X``.

        Data scaling uses :func:`data_moments` with the frequency weights, so integer weights
        give the priors of the repeated rows.
        """
        return {}

    # ------------------------------------------------------------------ NumPy
    def component_log_density(self, X: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
        """``log f(x_n | theta_k)`` of shape (..., N, K) for parameters with leading dims (...)."""
        raise NotImplementedError

    def draw(
        self, params: Mapping[str, np.ndarray], z: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Observations given their labels.

        ``params`` have a leading sample axis S (``w`` (S, K), ...); ``z`` (S, n) ints.
        Returns (S, n, D).
        """
        raise NotImplementedError

    def conditional_fill(
        self,
        params: Mapping[str, np.ndarray],
        X: np.ndarray,
        z: np.ndarray,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """The missing entries (NaN) of ``X`` given its observed ones and the labels ``z``.

        ``params`` have a leading sample axis S (``w`` (S, K), ...), ``X`` (n, D) holds NaN
        for a missing entry, ``z`` (S, n) the component of each row under each draw. Returns
        (S, n, D) floats: ``X`` with every missing entry replaced by ``E[x_m | x_o, z]``
        (``rng`` None) or by a draw from ``p(x_m | x_o, z)``; observed entries unchanged.
        Families with independent features fill from the component itself; the Gaussian
        with full covariances conditions on the observed coordinates. Only families with
        :attr:`supports_missing`.
        """
        raise NotImplementedError

    def n_parameters(self, n_components: int, n_features: int, covariance: str | None) -> int:
        """Free parameters of the mixture, weights included (BIC, AIC, ICL)."""
        raise NotImplementedError

    def label_features(self, params: Mapping[str, np.ndarray]) -> np.ndarray:
        """Per-component summary (..., K, P) on an unconstrained scale, for relabelling.

        ``params`` in result names with leading dims (...); the weights are added by the
        caller. The pivot method matches components by these numbers.
        """
        raise NotImplementedError

    def marginal(self, params: Mapping[str, np.ndarray], j: int) -> dict[str, np.ndarray]:
        """Parameters (result names) of the 1-D marginal of feature ``j`` (``w`` included).

        For plots of one feature's density; families that cannot give one raise
        NotImplementedError (then no 1-D density is drawn).
        """
        raise NotImplementedError

    def order_key(self, point: Mapping[str, np.ndarray]) -> np.ndarray | None:
        """Values (K,) by which point estimates' components are sorted (None: keep the order).

        EM and MAP results are sorted so that the labels of a fit are deterministic.
        """
        return None

    def coords(self, X: np.ndarray, feature_names: list[str]) -> dict[str, Any]:
        """Extra coordinates the family's variables need (besides component/feature/obs_id)."""
        return {}

    # ------------------------------------------------------------------ EM
    def hyper_variables(self, spec: Any, n_features: int) -> dict[str, tuple[str, ...]]:
        """Free hyper-parameters of the family's priors, {name: dims}, without a component dim.

        E.g. the Gaussian ``variance_beta`` (feature) of Richardson & Green's hierarchical
        prior: a free variable of the graph (in :meth:`free_var_names`) that results may keep
        next to the weights prior's ``e0`` / ``dp_alpha``; relabelling leaves it alone.
        """
        return {}

    def em_kwargs(
        self, spec: Any, priors: Mapping[str, np.ndarray] | None, n_features: int
    ) -> dict[str, Any]:
        """Keyword arguments of the EM estimator for a ``ModelSpec`` (prior None: ML).

        The caller adds ``n_components``, ``n_init``, ``random_state``, ``tol``, ``max_iter``
        (and ``reg_covar`` when the estimator has it). By default the MAP-EM prior holds
        ``weights_alpha`` and the family's ``prior_fields``, as the estimator's ``prior``.
        """
        if priors is None:
            return {}
        keys = ("weights_alpha", *self.prior_fields)
        return {"prior": {key: priors[key] for key in keys if key in priors}}

    def em_point(self, estimator: Any, n_features: int) -> dict[str, np.ndarray]:
        """The fitted estimator's parameters as result variables (``w`` included)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ graph
    def add_to_graph(
        self,
        spec: Any,
        priors: Mapping[str, Any],
        n_features: int,
        w: Any,
        observed: dict[str, Any],
        formulation: str = "custom",
        rows: ObservedRows | None = None,
    ) -> None:
        """Inside a ``pm.Model`` context: add the parameters and the observed ``x``.

        ``priors`` holds ``pm.Data`` tensors named ``prior_<name>``; ``w`` is the weights
        variable; ``observed`` the keyword arguments of ``x`` (``observed=``, ``dims=`` or
        ``total_size=``). ``rows`` (:class:`ObservedRows`; passed only when the data have
        missing entries or labels, and only to families with :attr:`supports_missing` /
        :attr:`graph_labels`): the density of ``x`` then reads ``rows.mask()`` (each row's
        observed coordinates) and ends in :func:`mixture_logp_graph` with ``rows.labels()``.
        Without ``rows`` the graph is the one of complete, unlabelled data.
        """
        raise NotImplementedError

    def free_var_names(self, spec: Any, n_features: int) -> list[str]:
        """Free random variables added by :meth:`add_to_graph`, in model order."""
        raise NotImplementedError

    def point_to_initvals(
        self, spec: Any, point: Mapping[str, Any], n_features: int
    ) -> dict[str, np.ndarray]:
        """Initial values of the free variables (not ``w``) from a point in result names."""
        raise NotImplementedError

    def default_point(self, spec: Any, X: np.ndarray) -> dict[str, np.ndarray]:
        """A valid starting point without a fit (result names, ``w`` excluded).

        ``X`` (N, D) is the validated data; the usual recipe sorts the rows by feature 0, cuts
        them into K chunks and takes each chunk's statistics.
        """
        raise NotImplementedError

    def data_attrs(self, X: Any, feature_names: list[str]) -> dict[str, str]:
        """Attrs of the stored ``observed_data`` that describe the raw data (strings only).

        E.g. the categorical family's level names per item, ``levels`` (JSON: feature ->
        list of names), used by the summary table and the plots.
        """
        return {}

    def graph_key(self, X: np.ndarray) -> Any:
        """What of the data besides its shape fixes the graph (compiled-model cache key)."""
        return None

    def formulations(self, covariance: str | None, n_features: int) -> tuple[str, ...]:
        """Graph formulations available (``"custom"`` always)."""
        return ("custom",)

    def __repr__(self) -> str:
        return f"<bayesmix family {self.name!r}>"
