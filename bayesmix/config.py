"""Model, data and fit specifications, TOML loading and data-scaled prior resolution.

A run is described by four frozen dataclasses: :class:`DataSpec` (where the data come from),
:class:`ModelSpec` (family, number of components, covariance structure, priors in a
:class:`PriorSpec`), :class:`FitSpec` (which methods to run, sampler settings) and
:class:`RunSpec` (all of them plus a name). They are read from TOML files such as::

    name = "faithful_full"          # optional, defaults to the file stem

    [data]
    path = "builtin:old_faithful"   # or a CSV path, relative to this file
    columns = ["eruptions", "waiting"]
    # id = "patient"                # optional: row ids (index, obs_id), not a feature
    # missing = "model"             # optional: "error" (default) | "drop" | "model"
    #                               #   (model: missing at random, summed out by every fit)
    # labels = "group"              # optional: partial labels (empty = unknown), not a feature
    # sep = ";"                     # optional: separator; detected when left out
    # decimal = ","                 # optional: decimal mark; detected when left out

    [model]
    family = "gaussian"             # gaussian | bernoulli
    components = 2
    covariance = "full"             # full | diag | spherical (gaussian only)
    ordered = false                 # order components by the mean of the first feature

    [priors]                        # every key optional; see PriorSpec for the defaults
    weights_alpha = 1.0
    mu_scale = [2.0, 30.0]

    [fit]
    methods = ["em", "map", "nuts"] # any of em, map, nuts, advi
    draws = 1000
    tune = 1000
    chains = 4
    seed = 0
    sampler = "nutpie"              # nutpie | pymc | numpyro | blackjax
    target_accept = 0.9

:func:`load_spec` and :func:`spec_from_dict` report *every* problem of a spec at once in one
:class:`~bayesmix._validation.SpecError`. :func:`resolve_priors` turns the ``None`` entries of a
:class:`PriorSpec` into numbers scaled to the data; the PyMC graph and the MAP-EM fit both
read their prior numbers from it, so the two always describe the same model.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bayesmix._validation import ParameterError, SpecError
from bayesmix.families import FAMILIES, get_family

__all__ = [
    "FAMILIES",
    "COVARIANCES",
    "METHODS",
    "WEIGHT_PRIORS",
    "VARIANCE_PRIORS",
    "SAMPLERS",
    "DataSpec",
    "FitSpec",
    "ModelSpec",
    "PriorSpec",
    "RunSpec",
    "load_spec",
    "resolve_priors",
    "spec_from_dict",
]

#: Every covariance setting of any family (each family accepts its own ``covariances``).
COVARIANCES = ("full", "diag", "spherical", "tied")
METHODS = ("em", "map", "nuts", "advi")
SAMPLERS = ("nutpie", "pymc", "numpyro", "blackjax")
#: Priors of the mixture weights: a Dirichlet, a sparse (overfitted) Dirichlet, a truncated DP.
WEIGHT_PRIORS = ("dirichlet", "sparse", "dp")
#: Priors of the Gaussian variances (``[priors] variance``): HalfNormal on the standard
#: deviations, inverse-gamma on the variances, inverse-Wishart on the covariance matrices.
VARIANCE_PRIORS = ("half_normal", "inverse_gamma", "inverse_wishart")
#: Default number of components (K_max, the truncation) of sparse and DP mixtures.
KMAX_DEFAULT = 10
#: Default Dirichlet concentration e0 of a sparse finite mixture (Malsiner-Walli et al. 2016).
SPARSE_ALPHA_DEFAULT = 0.01
#: The data shipped with the package, ``[data] path = "builtin:<name>"`` (bayesmix.data loads
#: them and re-exports this list as ``BUILTIN_TABLES``).
BUILTIN_DATA = (
    "old_faithful",
    "low_dim_gauss_mix",
    "digits",
    "death_notices",
    "death_notices_table",
    "galaxies",
    "galaxies_1000kms",
    "acidity",
    "iris",
)
#: Named priors on the number of components (``[priors] k_prior``); a list of weights also.
K_PRIORS = ("uniform", "poisson")
#: Separator names accepted in ``[data] sep`` (as in ``bayesmix.data.SEPARATOR_NAMES``).
DATA_SEPARATORS = ("comma", "semicolon", "tab", "pipe", "whitespace")
#: ``[data] missing``: refuse, drop, or model (missing at random) rows with missing values.
MISSING_CHOICES = ("error", "drop", "model")

Number = float | tuple[float, ...]


@dataclass(frozen=True)
class PriorSpec:
    """Prior hyper-parameters of a mixture; ``None`` means "scaled to the data".

    The model is (``k`` a component, ``d`` a feature, ``s_d`` the sample standard deviation of
    feature ``d``, ``m_d`` its sample mean)::

        w               ~ Dirichlet(weights_alpha * ones(K))         (weights = "dirichlet")
        w               ~ Dirichlet(e0 * ones(K))                    (weights = "sparse")
                          e0 = weights_alpha, or e0 ~ Gamma(weights_alpha_prior)
        w               ~ StickBreaking(alpha, K)                    (weights = "dp")
                          alpha ~ Gamma(dp_alpha_prior)
        mu[k, d]        ~ Normal(mu_loc[d], mu_scale[d])             (gaussian)
        sigma[k, d]     ~ HalfNormal(sigma_scale[d])                 (diag, full, 1-D)
        sigma[k]        ~ HalfNormal(sigma_scale)                    (spherical: one per component)
        corr[k]         ~ LKJ(lkj_eta)                               (full)
                          tied: one sigma[d] and one corr shared by the components
        sigma[k, d]^2   ~ InverseGamma(variance_alpha, variance_beta[d])
                          (variance = "inverse_gamma": 1-D, diag; spherical: one variance
                          per component, one beta; tied 1-D: one variance)
        Sigma[k]        ~ InverseWishart(2 variance_alpha + D - 1, 2 diag(variance_beta))
                          (variance = "inverse_wishart": full, tied; each diagonal element
                          is then InverseGamma(variance_alpha, variance_beta[d]))
        variance_beta[d] ~ Gamma(g, h)    with variance_beta_prior = [g, h] (shape, rate):
                          Richardson & Green's (1997) hierarchical form
        p[k, d]         ~ Beta(beta_a, beta_b)                       (bernoulli)
        rate[k, d]      ~ Gamma(rate_shape[d], rate_rate[d])         (poisson)
        probs[k, d, :]  ~ Dirichlet(category_alpha * ones(L_d))      (categorical)
        nu[k]           ~ Gamma(dof_shape, dof_rate)                 (student_t)

    Data-scaled defaults (weakly informative: they keep the parameters on the scale of the data
    without pulling them anywhere in particular):

    * ``mu_loc = m_d``: the feature means;
    * ``mu_scale = 2 * s_d``: component means a priori within about +-4 s_d of the centre of the
      data, which covers every plausible cluster centre;
    * ``sigma_scale = s_d``: a component standard deviation is a priori smaller than the total
      spread (HalfNormal median 0.67 s_d, 95 % below 1.96 s_d). For spherical covariances the
      scale is the root mean square of the ``s_d``.
    * ``rate_shape = 1`` and ``rate_rate = 1 / m_d`` (Poisson): an exponential prior whose mean
      is the feature's mean count.
    * ``category_alpha = 1`` (categorical): flat on each item's probability vector.
    * ``variance_alpha = 2``: the smallest integer shape with a finite prior mean of the
      variance (``beta / (alpha - 1)``), Richardson & Green's (1997) choice;
      ``variance_beta = (0.674 s_d)^2 * median(Gamma(variance_alpha, 1))``: the prior median
      of ``sigma`` is then ``0.674 s_d``, that of today's HalfNormal(s_d) default
      (spherical: with the root mean square of the ``s_d``).

    ``docs/priors.md`` states the formulas, the defaults and the mapping of Richardson &
    Green's (xi, kappa, alpha, g, h) onto these keys.

    Each family reads its own fields (``Family.prior_fields``) and ignores the others.

    Scalars given for ``mu_loc``, ``mu_scale`` and ``sigma_scale`` apply to every feature;
    sequences must have one entry per feature.

    Parameters
    ----------
    weights : {"dirichlet", "sparse", "dp"}
        Prior of the mixture weights. ``"sparse"``: an overfitted finite mixture whose small
        Dirichlet concentration empties the superfluous components (Malsiner-Walli,
        Fruehwirth-Schnatter & Gruen 2016); ``"dp"``: a Dirichlet process truncated at K
        components (stick-breaking, the last stick takes the rest).
    weights_alpha : float, tuple of float or None
        Dirichlet concentration (scalar or one per component). None: 1 (flat on the simplex)
        for ``"dirichlet"``, 0.01 for ``"sparse"``. Not used by ``"dp"``.
    weights_alpha_prior : (float, float) or None
        ``"sparse"`` only: a Gamma(shape, rate) hyperprior on the concentration e0 (a free
        variable then), instead of the fixed ``weights_alpha``.
    dp_alpha_prior : (float, float)
        ``"dp"`` only: Gamma(shape, rate) prior on the DP concentration alpha.
    mu_loc, mu_scale, sigma_scale : float, tuple of float or None
        See above.
    variance : {"half_normal", "inverse_gamma", "inverse_wishart"}
        Prior of the Gaussian variances. ``"half_normal"`` (default): HalfNormal(sigma_scale)
        on each standard deviation; ``"inverse_gamma"``: InverseGamma(variance_alpha,
        variance_beta) (shape, scale) on each variance (1-D, diag, spherical, tied 1-D);
        ``"inverse_wishart"``: the conjugate prior of a covariance matrix (full, tied).
    variance_alpha : float
        Shape of the inverse-gamma (and of the inverse-Wishart's diagonal elements).
    variance_beta : float, tuple of float or None
        Scale of the inverse-gamma per feature (one number for spherical); None: data-scaled.
    variance_beta_prior : (float, float) or None
        ``[g, h]``: variance_beta becomes a free variable ~ Gamma(g, h) (shape, rate), one per
        feature shared by the components (Richardson & Green 1997), instead of a fixed number.
    lkj_eta : float
        LKJ shape of the correlation matrices (full covariance); 1 is uniform, 2 mildly
        favours small correlations.
    beta_a, beta_b : float
        Beta prior on each Bernoulli probability.
    rate_shape, rate_rate : float, tuple of float or None
        Gamma prior (shape, rate) on each Poisson rate; per feature or one for all.
    category_alpha : float or None
        Dirichlet concentration of each categorical item's level probabilities.
    dof_shape, dof_rate : float
        Gamma prior (shape, rate) on the degrees of freedom of Student-t components
        (Juarez & Steel 2010: 2 and 0.1).
    dof : float or None
        Student-t: degrees of freedom fixed for every component, instead of the Gamma prior;
        ``nu`` is then a constant of the model (EM's ``dof``). One number: different fixed
        numbers per component would make the components' labels mean something (they would
        no longer be exchangeable) and sorting them would break.
    k_prior : {"uniform", "poisson"} or tuple of float
        Prior on the number of components K, used by ``select_k(bayesian=True)`` /
        ``bayesmix select --bayesian`` for p(K | y) (not by a fit with one K).
        ``"uniform"``: equal over the K compared; ``"poisson"``: p(K) proportional to
        ``k_prior_mean^K / K!`` for K >= 1 (a Poisson truncated at 0, Stephens 2000);
        numbers: relative prior weights of K = 1, 2, ..., len(k_prior). In every case the
        probabilities are renormalised over the K compared, so a uniform prior on 1..30
        compared on K = 1..12 is ``"uniform"``.
    k_prior_mean : float
        The Poisson mean of ``k_prior = "poisson"``.
    """

    weights: str = "dirichlet"
    weights_alpha: Number | None = None
    weights_alpha_prior: tuple[float, float] | None = None
    dp_alpha_prior: tuple[float, float] = (1.0, 1.0)
    mu_loc: Number | None = None
    mu_scale: Number | None = None
    sigma_scale: Number | None = None
    variance: str = "half_normal"
    variance_alpha: float = 2.0
    variance_beta: Number | None = None
    variance_beta_prior: tuple[float, float] | None = None
    lkj_eta: float = 2.0
    beta_a: float = 1.0
    beta_b: float = 1.0
    rate_shape: Number | None = None
    rate_rate: Number | None = None
    category_alpha: float | None = None
    dof_shape: float = 2.0
    dof_rate: float = 0.1
    dof: float | None = None
    k_prior: str | tuple[float, ...] = "uniform"
    k_prior_mean: float = 3.0

    def __post_init__(self) -> None:
        # weights_alpha=None means the default of the weights prior: 1 (flat) for a
        # Dirichlet, e0 = 0.01 for a sparse mixture without a hyperprior, unused by a DP;
        # resolved here so that an explicit 1.0 and the default are the same spec
        if isinstance(self.k_prior, list | tuple):
            object.__setattr__(self, "k_prior", tuple(float(v) for v in self.k_prior))
        elif self.k_prior not in K_PRIORS:
            raise ParameterError(
                f"k_prior: expected one of {', '.join(K_PRIORS)} or prior weights of K = 1, 2, "
                f"..., got {self.k_prior!r}"
            )
        if self.weights_alpha is None and self.weights_alpha_prior is None:
            default = {"dirichlet": 1.0, "sparse": SPARSE_ALPHA_DEFAULT}.get(self.weights)
            object.__setattr__(self, "weights_alpha", default)

    def k_prior_weights(self, ks: Any) -> dict[int, float]:
        """Relative prior weights ``{K: weight}`` of ``k_prior`` for the numbers ``ks``.

        Raises
        ------
        ParameterError
            When ``k_prior`` gives no weight for one of ``ks``.
        """
        ks = [int(k) for k in ks]
        if self.k_prior == "uniform":
            return dict.fromkeys(ks, 1.0)
        if self.k_prior == "poisson":
            lam = float(self.k_prior_mean)
            # in logs relative to the largest K's term: no overflow for large K
            logs = {k: k * math.log(lam) - math.lgamma(k + 1) for k in ks}
            top = max(logs.values())
            return {k: math.exp(v - top) for k, v in logs.items()}
        weights = tuple(self.k_prior)
        beyond = [k for k in ks if k > len(weights)]
        if beyond:
            raise ParameterError(
                f"k_prior has weights for K = 1..{len(weights)}, not for K = {beyond}; give "
                f"one weight per K up to {max(ks)}, or compare fewer K"
            )
        return {k: float(weights[k - 1]) for k in ks}

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists for tuples), omitting ``None`` entries (TOML has no null).

        ``dp_alpha_prior`` appears only with ``weights = "dp"`` (the only prior that reads it),
        ``variance`` and ``variance_alpha`` only with a variance prior other than the default,
        ``k_prior`` only when not uniform and ``k_prior_mean`` only with ``"poisson"``.
        """
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is None or (f.name == "dp_alpha_prior" and self.weights != "dp"):
                continue
            if f.name in ("variance", "variance_alpha") and self.variance == "half_normal":
                continue
            if f.name == "k_prior" and v == "uniform":
                continue
            if f.name == "k_prior_mean" and self.k_prior != "poisson":
                continue
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out


@dataclass(frozen=True)
class ModelSpec:
    """What the model is: family, number of components, covariance structure, priors.

    Parameters
    ----------
    family : str
        A name of :data:`bayesmix.families.FAMILIES` (``"gaussian"``, ``"bernoulli"``,
        ``"poisson"``, ``"student_t"``, ``"categorical"``).
    n_components : int
        Number of mixture components ``K >= 1`` (for sparse and DP weights: K_max, the
        truncation).
    covariance : {"full", "diag", "tied", "spherical"}
        Covariance (scale) structure of the families that have one (``Family.covariances``;
        Gaussian all four, Student-t ``full`` and ``diag``); ignored by the others. 1-D data
        behave the same for ``full``, ``diag`` and ``spherical``.
    ordered : bool
        Break label switching by ordering the component locations of the first feature
        (families with ``Family.orderable``: Gaussian, Student-t).
    priors : PriorSpec
    """

    family: str = "gaussian"
    n_components: int = 2
    covariance: str = "full"
    ordered: bool = False
    priors: PriorSpec = field(default_factory=PriorSpec)

    def to_dict(self) -> dict[str, Any]:
        """The ``[model]`` table (``components`` is the TOML name of ``n_components``)."""
        return {
            "family": self.family,
            "components": self.n_components,
            "covariance": self.covariance,
            "ordered": self.ordered,
        }


@dataclass(frozen=True)
class DataSpec:
    """Where the data come from.

    Parameters
    ----------
    path : str
        ``"builtin:<name>"`` (``old_faithful``, ``low_dim_gauss_mix``, ``digits``) or a CSV path.
        :func:`load_spec` resolves relative paths against the folder of the spec file and stores
        the absolute path.
    columns : tuple of str or None
        Columns to use; ``None`` means every numeric column (text and id-named columns are
        left out, see :func:`bayesmix.data.load_table`).
    id : str or None
        Column of unique row labels: the index of the table and the ``obs_id`` of a fit.
    dropna : bool
        Drop the rows with missing values instead of refusing the table.
    sep : str or None
        Field separator (one character, or ``comma``, ``semicolon``, ``tab``, ``pipe``,
        ``whitespace``); ``None``: detected.
    decimal : str or None
        Decimal mark, ``"."`` or ``","``; ``None``: detected.
    weights : str or None
        Column of frequency weights (sample weights): not a feature; each row counts that
        many times (integer weights = repeated rows), e.g. the counts of a frequency table.
    missing : {"error", "drop", "model"} or None
        Rows with missing values: refused ("error", the default), dropped ("drop", as
        ``dropna = true``), or kept and modelled as missing at random ("model": every fit
        sums the missing values out). None: "drop" when ``dropna`` is set, else "error".
    labels : str or None
        Column of partial labels (not a feature): a component number or group name for the
        rows whose component is known, empty for the others (semi-supervised fit).
    """

    path: str = "builtin:old_faithful"
    columns: tuple[str, ...] | None = None
    id: str | None = None
    dropna: bool = False
    sep: str | None = None
    decimal: str | None = None
    weights: str | None = None
    missing: str | None = None
    labels: str | None = None

    @property
    def missing_values(self) -> str:
        """What to do with missing values: "error", "drop" or "model" (``dropna`` resolved)."""
        if self.missing is not None:
            return self.missing
        return "drop" if self.dropna else "error"

    def to_dict(self) -> dict[str, Any]:
        """The ``[data]`` table (options at their defaults are left out)."""
        out: dict[str, Any] = {"path": self.path}
        if self.columns is not None:
            out["columns"] = list(self.columns)
        for key in ("id", "sep", "decimal", "weights", "missing", "labels"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.dropna:
            out["dropna"] = True
        return out

    def load(self, text: bool = False):
        """Load the table with :func:`bayesmix.data.load_table` -> ``pandas.DataFrame``.

        ``df.attrs["notes"]`` lists what the loader decided (separator detected, columns and
        rows left out). ``text=True`` keeps text columns as features (categorical data). With
        ``weights`` the column is taken out of the table into ``df.attrs["sample_weight"]``
        (float array, one weight per row).
        """
        from bayesmix.data import load_table

        cols = list(self.columns) if self.columns is not None else None
        if cols is not None and self.weights is not None:
            cols.append(self.weights)
        df = load_table(
            self.path,
            cols,
            id_column=self.id,
            missing=self.missing_values,
            sep=self.sep,
            decimal=self.decimal,
            text=text,
            labels=self.labels,
        )
        if self.weights is not None:
            from bayesmix._validation import DataError

            if self.weights not in df.columns:
                raise DataError(
                    f"weights column {self.weights!r} not found: expected one of "
                    f"{', '.join(map(str, df.columns))}; check [data] weights"
                )
            # a frequency table's values often run 0..n-1 like row numbers: no id hint then
            notes = [n for n in df.attrs.get("notes", []) if "holds the row numbers" not in n]
            weights = df.pop(self.weights).to_numpy(dtype=float)
            df.attrs["notes"] = [*notes, f"used column '{self.weights}' as sample weights"]
            df.attrs["sample_weight"] = weights
        return df


@dataclass(frozen=True)
class FitSpec:
    """How to fit: methods (run in the order em -> map -> nuts -> advi) and sampler settings.

    Parameters
    ----------
    methods : tuple of str
        Any of ``"em"``, ``"map"``, ``"nuts"``, ``"advi"``.
    draws, tune, chains : int
        NUTS draws and tuning steps per chain, number of chains.
    seed : int
        Seed of every random step of the run.
    sampler : {"nutpie", "pymc", "numpyro", "blackjax"}
    target_accept : float
        NUTS target acceptance rate in (0, 1).
    ppc_draws : int
        Posterior draws (in all, spread over the chains) that get a replicate data set in
        ``posterior_predictive``; 0 adds no such group. The group has ppc_draws x N x D
        values, whatever the number of draws.
    store_log_likelihood : bool
        Keep the pointwise ``log_likelihood`` group (chains x draws x N values) in the
        result, for ``az.loo(result)``; otherwise LOO computes it on demand
        (:func:`bayesmix.inference.log_likelihood`).
    """

    methods: tuple[str, ...] = ("em", "map", "nuts")
    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    seed: int = 0
    sampler: str = "nutpie"
    target_accept: float = 0.9
    ppc_draws: int = 100
    store_log_likelihood: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The ``[fit]`` table."""
        d = dataclasses.asdict(self)
        d["methods"] = list(self.methods)
        return d


@dataclass(frozen=True)
class RunSpec:
    """A complete run: a name, the data, the model and the fit settings.

    The defaults are the main job (``bayesmix fit`` with no spec, the same as
    ``models/old_faithful_2d.toml``): Old Faithful, both columns, K=2 full covariance,
    EM + MAP + NUTS with 4 chains of 1000 draws.
    """

    name: str = "old_faithful_2d"
    data: DataSpec = field(default_factory=DataSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    fit: FitSpec = field(default_factory=FitSpec)

    def to_dict(self) -> dict[str, Any]:
        """Nested dict in the TOML layout; ``spec_from_dict(s.to_dict()) == s``."""
        return {
            "name": self.name,
            "data": self.data.to_dict(),
            "model": self.model.to_dict(),
            "priors": self.model.priors.to_dict(),
            "fit": self.fit.to_dict(),
        }

    def to_json(self) -> str:
        """JSON string of :meth:`to_dict` (stored in result attrs)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        """Inverse of :meth:`to_json`."""
        d = json.loads(text)
        return spec_from_dict(d, name=d.get("name", "run"))


# ---------------------------------------------------------------------------------------------
# parsing with every problem collected


_SECTIONS = {
    "data": {"path", "columns", "id", "dropna", "sep", "decimal", "weights", "missing", "labels"},
    "model": {"family", "components", "covariance", "ordered"},
    "priors": {f.name for f in dataclasses.fields(PriorSpec)},
    "fit": {f.name for f in dataclasses.fields(FitSpec)},
}
_TOP_KEYS = set(_SECTIONS) | {"name"}


def _spec_error(problems: list[str], name: str | None = None) -> SpecError:
    """A SpecError carrying every problem (``.problems``) and a one-line summary."""
    name = name or "spec"
    try:
        err = SpecError(problems, name=name)
    except TypeError:
        err = SpecError(f"spec {name} has {len(problems)} problem(s): " + "; ".join(problems))
    err.problems = list(problems)
    return err


#: spec keys named after the CLI flag that sets them (``--id-column`` is ``[data] id``)
_FLAG_NAMES = {"id_column": "id", "id-column": "id", "separator": "sep", "delimiter": "sep"}


def _closest(word: str, choices) -> str:
    alias = _FLAG_NAMES.get(word)
    if alias in choices:
        return f"; did you mean {alias!r}?"
    match = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.5)
    return f"; did you mean {match[0]!r}?" if match else f"; valid: {', '.join(sorted(choices))}"


class _Collector:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def add(self, msg: str) -> None:
        self.problems.append(msg)

    def integer(self, where: str, v: Any, *, minimum: int) -> int | None:
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            self.add(f"{where}: expected an integer >= {minimum}, got {v!r}")
            return None
        if v < minimum:
            self.add(f"{where}: expected an integer >= {minimum}, got {v}")
            return None
        return int(v)

    def choice(self, where: str, v: Any, choices: tuple[str, ...]) -> str | None:
        if not isinstance(v, str):
            self.add(f"{where}: expected a string, one of {', '.join(choices)}; got {v!r}")
            return None
        if v not in choices:
            match = difflib.get_close_matches(v, sorted(choices), n=1, cutoff=0.5)
            hint = f"; did you mean {match[0]!r}?" if match else ""
            self.add(f"{where}: unknown value {v!r}, expected one of {', '.join(choices)}{hint}")
            return None
        return v

    def boolean(self, where: str, v: Any) -> bool | None:
        if not isinstance(v, bool):
            self.add(f"{where}: expected true or false, got {v!r}")
            return None
        return v

    def positive(self, where: str, v: Any, *, vector: bool, allow_none: bool = False) -> Any:
        if v is None and allow_none:
            return None
        values = v if (vector and isinstance(v, list | tuple)) else [v]
        ok = len(values) > 0
        for x in values:
            if isinstance(x, bool) or not isinstance(x, int | float | np.integer | np.floating):
                ok = False
            elif not np.isfinite(x) or x <= 0:
                ok = False
        if not ok:
            kind = (
                "a positive number or a list of positive numbers"
                if vector
                else ("a positive number")
            )
            self.add(f"{where}: expected {kind}, got {v!r}")
            return None
        if isinstance(v, list | tuple):
            return tuple(float(x) for x in v)
        return float(v)

    def pair(self, where: str, v: Any, what: str) -> tuple[float, float] | None:
        ok = isinstance(v, list | tuple) and len(v) == 2
        if ok:
            for x in v:
                if isinstance(x, bool) or not isinstance(
                    x, int | float | np.integer | np.floating
                ):
                    ok = False
                elif not np.isfinite(x) or x <= 0:
                    ok = False
        if not ok:
            self.add(f"{where}: expected two positive numbers {what}, got {v!r}")
            return None
        return (float(v[0]), float(v[1]))

    def real(self, where: str, v: Any) -> Any:
        if v is None:
            return None
        values = v if isinstance(v, list | tuple) else [v]
        ok = len(values) > 0 and all(
            not isinstance(x, bool)
            and isinstance(x, int | float | np.integer | np.floating)
            and np.isfinite(x)
            for x in values
        )
        if not ok:
            self.add(f"{where}: expected a finite number or a list of numbers, got {v!r}")
            return None
        if isinstance(v, list | tuple):
            return tuple(float(x) for x in v)
        return float(v)


def spec_from_dict(
    d: dict[str, Any], name: str | None = None, *, base_dir: str | Path | None = None
) -> RunSpec:
    """Build a :class:`RunSpec` from a TOML-layout dict, reporting every problem at once.

    Parameters
    ----------
    d : dict
        Sections ``data``, ``model``, ``priors``, ``fit`` (all optional) and an optional
        top-level ``name``.
    name : str, optional
        Name of the run; defaults to ``d["name"]`` or ``"run"``.
    base_dir : path, optional
        Folder against which a relative ``data.path`` is resolved; the file must then exist.
        Without it, relative paths are kept as given and not checked.

    Returns
    -------
    RunSpec

    Raises
    ------
    SpecError
        Listing every unknown section or key (with the closest valid name), wrong type and bad
        value.
    """
    col = _Collector()
    if not isinstance(d, dict):
        raise _spec_error([f"spec: expected a table (dict), got {type(d).__name__}"], name)
    run_name = name if name is not None else d.get("name", "run")
    if not isinstance(run_name, str):
        col.add(f"name: expected a string, got {run_name!r}")
        run_name = "run"
    for key in d:
        if key not in _TOP_KEYS:
            col.add(f"unknown section [{key}]{_closest(key, _TOP_KEYS)}")
    tables: dict[str, dict] = {}
    for sec, keys in _SECTIONS.items():
        t = d.get(sec, {})
        if not isinstance(t, dict):
            col.add(f"[{sec}]: expected a table, got {t!r}")
            t = {}
        for key in t:
            if key not in keys:
                col.add(f"unknown key {key!r} in [{sec}]{_closest(key, keys)}")
        tables[sec] = {k: v for k, v in t.items() if k in keys}

    # [data]
    data_t = tables["data"]
    path = data_t.get("path", DataSpec.path)
    columns = data_t.get("columns")
    if not isinstance(path, str) or not path:
        col.add(f"[data] path: expected a non-empty string, got {path!r}")
        path = DataSpec.path
    elif path.startswith("builtin:"):
        bname = path.removeprefix("builtin:")
        if bname not in BUILTIN_DATA:
            col.add(
                f"[data] path: unknown built-in data set {bname!r}, expected one of "
                f"{', '.join(BUILTIN_DATA)}{_closest(bname, BUILTIN_DATA)}"
            )
    else:
        p = Path(path).expanduser()
        if not p.is_absolute() and base_dir is not None:
            p = Path(base_dir) / p
        if base_dir is not None:
            if not p.is_file():
                col.add(
                    f"[data] path: data file {str(p)!r} not found (relative paths are resolved "
                    "against the spec's folder); fix the path or use 'builtin:old_faithful'"
                )
            path = str(p.resolve())
    if columns is not None:
        if (
            not isinstance(columns, list | tuple)
            or not columns
            or not all(isinstance(c, str) for c in columns)
        ):
            col.add(f"[data] columns: expected a non-empty list of column names, got {columns!r}")
            columns = None
        else:
            columns = tuple(columns)
    data_id = data_t.get("id")
    if data_id is not None and (not isinstance(data_id, str) or not data_id):
        col.add(f"[data] id: expected a column name, got {data_id!r}")
        data_id = None
    elif data_id is not None and columns is not None and data_id in columns:
        col.add(
            f"[data] id: expected a column apart from the features, got {data_id!r}, which is "
            "also in [data] columns; remove it from columns"
        )
    data_weights = data_t.get("weights")
    if data_weights is not None and (not isinstance(data_weights, str) or not data_weights):
        col.add(f"[data] weights: expected a column name, got {data_weights!r}")
        data_weights = None
    elif data_weights is not None and (
        (columns is not None and data_weights in columns) or data_weights == data_id
    ):
        col.add(
            f"[data] weights: expected a column apart from the features and the id, got "
            f"{data_weights!r}; remove it from columns"
        )
    dropna = col.boolean("[data] dropna", data_t.get("dropna", False))
    missing = data_t.get("missing")
    if missing is not None:
        missing = col.choice("[data] missing", missing, MISSING_CHOICES)
        if dropna and missing not in (None, "drop"):
            col.add(
                f"[data] dropna: expected no dropna with missing = {missing!r} (they disagree); "
                'remove dropna, or set missing = "drop"'
            )
    data_labels = data_t.get("labels")
    if data_labels is not None and (not isinstance(data_labels, str) or not data_labels):
        col.add(f"[data] labels: expected a column name, got {data_labels!r}")
        data_labels = None
    elif data_labels is not None and (
        (columns is not None and data_labels in columns) or data_labels in (data_id, data_weights)
    ):
        col.add(
            f"[data] labels: expected a column apart from the features, the id and the "
            f"weights, got {data_labels!r}; remove it from columns"
        )
    sep = data_t.get("sep")
    if sep is not None and not (
        isinstance(sep, str)
        and (
            sep in DATA_SEPARATORS
            or (len(sep) == 1 and sep not in "\"'\r\n" and not sep.isalnum())
        )
    ):
        col.add(
            f"[data] sep: expected one character such as ';' or '\\t', or one of "
            f"{', '.join(DATA_SEPARATORS)}; got {sep!r}"
        )
        sep = None
    decimal = data_t.get("decimal")
    if decimal is not None and decimal not in (".", ","):
        col.add(f"[data] decimal: expected '.' or ',', got {decimal!r}")
        decimal = None
    elif decimal is not None and decimal == {"comma": ","}.get(sep, sep):
        col.add(
            f"[data] decimal: expected a mark other than the separator, got {decimal!r} for both"
        )

    # [model]
    mt = tables["model"]
    family = col.choice("[model] family", mt.get("family", "gaussian"), FAMILIES) or "gaussian"
    fam = get_family(family)
    weights_prior = tables["priors"].get("weights", "dirichlet")
    k_default = KMAX_DEFAULT if weights_prior in ("sparse", "dp") else 2
    k = col.integer("[model] components", mt.get("components", k_default), minimum=1) or 2
    cov = col.choice("[model] covariance", mt.get("covariance", "full"), COVARIANCES) or "full"
    if "covariance" in mt and fam.covariances and cov not in fam.covariances:
        col.add(
            f"[model] covariance: expected one of {', '.join(fam.covariances)} for family "
            f"{family!r}, got {cov!r}"
        )
    ordered = col.boolean("[model] ordered", mt.get("ordered", False))
    if ordered and not fam.orderable:
        col.add(
            f"[model] ordered: expected false for family {family!r}, got true; ordering is "
            "defined by the component locations of a "
            + " or ".join(repr(f) for f in FAMILIES if get_family(f).orderable)
            + " mixture"
        )

    # [priors]
    pt_ = tables["priors"]
    pri = {}
    pri["weights"] = (
        col.choice("[priors] weights", pt_.get("weights", "dirichlet"), WEIGHT_PRIORS)
        or "dirichlet"
    )
    pri["weights_alpha"] = col.positive(
        "[priors] weights_alpha", pt_.get("weights_alpha"), vector=True, allow_none=True
    )
    for key in ("weights_alpha_prior", "dp_alpha_prior"):
        if key in pt_:
            pri[key] = col.pair(f"[priors] {key}", pt_[key], "[shape, rate]")
    if pri["weights"] == "dp" and "weights_alpha" in pt_:
        col.add(
            '[priors] weights_alpha: not used with weights = "dp" (its concentration has the '
            "prior dp_alpha_prior); remove weights_alpha or set dp_alpha_prior = [shape, rate]"
        )
    if pri["weights"] != "dp" and "dp_alpha_prior" in pt_:
        col.add(
            f'[priors] dp_alpha_prior: only used with weights = "dp", got weights = '
            f'{pri["weights"]!r}; set weights = "dp" or remove dp_alpha_prior'
        )
    if pri["weights"] != "sparse" and "weights_alpha_prior" in pt_:
        col.add(
            f'[priors] weights_alpha_prior: only used with weights = "sparse", got weights = '
            f'{pri["weights"]!r}; set weights = "sparse" or remove weights_alpha_prior'
        )
    if "weights_alpha" in pt_ and "weights_alpha_prior" in pt_:
        col.add(
            "[priors] weights_alpha and weights_alpha_prior: expected one of them (a fixed "
            "concentration or a Gamma prior on it), got both; remove one"
        )
    if isinstance(pri["weights_alpha"], tuple) and len(pri["weights_alpha"]) != k:
        col.add(
            f"[priors] weights_alpha: expected a number or {k} numbers (one per "
            f"component), got {len(pri['weights_alpha'])}"
        )
    pri["mu_loc"] = col.real("[priors] mu_loc", pt_.get("mu_loc"))
    pri["mu_scale"] = col.positive(
        "[priors] mu_scale", pt_.get("mu_scale"), vector=True, allow_none=True
    )
    pri["sigma_scale"] = col.positive(
        "[priors] sigma_scale", pt_.get("sigma_scale"), vector=True, allow_none=True
    )
    _parse_variance_prior(col, pt_, pri, fam, cov)
    for key in ("lkj_eta", "beta_a", "beta_b", "dof_shape", "dof_rate"):
        default = getattr(PriorSpec, key)
        pri[key] = col.positive(f"[priors] {key}", pt_.get(key, default), vector=False)
    for key in ("rate_shape", "rate_rate"):
        pri[key] = col.positive(f"[priors] {key}", pt_.get(key), vector=True, allow_none=True)
    pri["category_alpha"] = col.positive(
        "[priors] category_alpha", pt_.get("category_alpha"), vector=False, allow_none=True
    )
    pri["dof"] = col.positive("[priors] dof", pt_.get("dof"), vector=False, allow_none=True)
    _parse_k_prior(col, pt_, pri)

    # [fit]
    ft = tables["fit"]
    methods = ft.get("methods", list(FitSpec.methods))
    if isinstance(methods, str):
        methods = [methods]
    if not isinstance(methods, list | tuple) or not methods:
        col.add(
            f"[fit] methods: expected a non-empty list from {', '.join(METHODS)}, got {methods!r}"
        )
        methods = list(FitSpec.methods)
    good_methods = []
    for m in methods:
        if col.choice("[fit] methods", m, METHODS):
            good_methods.append(m)
    fit_kw = {
        "methods": tuple(m for m in METHODS if m in good_methods),
        "draws": col.integer("[fit] draws", ft.get("draws", FitSpec.draws), minimum=1),
        "tune": col.integer("[fit] tune", ft.get("tune", FitSpec.tune), minimum=0),
        "chains": col.integer("[fit] chains", ft.get("chains", FitSpec.chains), minimum=1),
        "seed": col.integer("[fit] seed", ft.get("seed", FitSpec.seed), minimum=0),
        "sampler": col.choice("[fit] sampler", ft.get("sampler", FitSpec.sampler), SAMPLERS),
    }
    ta = ft.get("target_accept", FitSpec.target_accept)
    if isinstance(ta, bool) or not isinstance(ta, int | float) or not 0 < ta < 1:
        col.add(f"[fit] target_accept: expected a number in (0, 1), got {ta!r}")
    else:
        fit_kw["target_accept"] = float(ta)
    fit_kw["ppc_draws"] = col.integer(
        "[fit] ppc_draws", ft.get("ppc_draws", FitSpec.ppc_draws), minimum=0
    )
    fit_kw["store_log_likelihood"] = col.boolean(
        "[fit] store_log_likelihood",
        ft.get("store_log_likelihood", FitSpec.store_log_likelihood),
    )

    if col.problems:
        raise _spec_error(col.problems, run_name)

    return RunSpec(
        name=run_name,
        data=DataSpec(
            path=path,
            columns=columns,
            id=data_id,
            weights=data_weights,
            dropna=bool(dropna),
            sep=sep,
            decimal=decimal,
            missing=missing,
            labels=data_labels,
        ),
        model=ModelSpec(
            family=family,
            n_components=k,
            covariance=cov,
            ordered=bool(ordered),
            priors=PriorSpec(**pri),
        ),
        fit=FitSpec(**fit_kw),
    )


def _parse_k_prior(col: _Collector, pt_: dict, pri: dict) -> None:
    """``[priors] k_prior`` and ``k_prior_mean`` into ``pri``; every problem into ``col``."""
    kp = pt_.get("k_prior", "uniform")
    if isinstance(kp, list | tuple):
        weights = col.positive("[priors] k_prior", list(kp), vector=True)
        if weights is not None:
            pri["k_prior"] = weights
    else:
        pri["k_prior"] = col.choice("[priors] k_prior", kp, K_PRIORS) or "uniform"
    if "k_prior_mean" in pt_:
        if pri.get("k_prior") != "poisson":
            col.add(
                '[priors] k_prior_mean: only used with k_prior = "poisson"; set k_prior = '
                '"poisson" or remove k_prior_mean'
            )
        pri["k_prior_mean"] = col.positive(
            "[priors] k_prior_mean", pt_["k_prior_mean"], vector=False
        )


def _parse_variance_prior(col: _Collector, pt_: dict, pri: dict, fam: Any, cov: str) -> None:
    """``[priors] variance`` and its numbers into ``pri``; every problem into ``col``."""
    keys = ("variance", "variance_alpha", "variance_beta", "variance_beta_prior")
    given = [key for key in keys if key in pt_]
    if given and "variance" not in fam.prior_fields:
        col.add(
            f"[priors] {given[0]}: not used by family {fam.name!r}; remove it (the variance "
            "priors are those of the gaussian family)"
        )
        return
    variance = (
        col.choice("[priors] variance", pt_.get("variance", "half_normal"), VARIANCE_PRIORS)
        or "half_normal"
    )
    pri["variance"] = variance
    pri["variance_alpha"] = col.positive(
        "[priors] variance_alpha",
        pt_.get("variance_alpha", PriorSpec.variance_alpha),
        vector=False,
    )
    if pri["variance_alpha"] is None:
        pri["variance_alpha"] = PriorSpec.variance_alpha
    pri["variance_beta"] = col.positive(
        "[priors] variance_beta", pt_.get("variance_beta"), vector=True, allow_none=True
    )
    if "variance_beta_prior" in pt_:
        pri["variance_beta_prior"] = col.pair(
            "[priors] variance_beta_prior", pt_["variance_beta_prior"], "[shape g, rate h]"
        )
    if variance == "half_normal":
        for key in given:
            if key != "variance":
                col.add(
                    f'[priors] {key}: only used with variance = "inverse_gamma" or '
                    f'"inverse_wishart", got variance = "half_normal"; set variance or '
                    f"remove {key}"
                )
        return
    if "sigma_scale" in pt_:
        col.add(
            f'[priors] sigma_scale: only used with variance = "half_normal", got variance = '
            f'"{variance}"; remove sigma_scale (the scale is variance_beta)'
        )
    if "variance_beta" in pt_ and "variance_beta_prior" in pt_:
        col.add(
            "[priors] variance_beta and variance_beta_prior: expected one of them (a fixed "
            "scale or a Gamma prior on it), got both; remove one"
        )
    if variance == "inverse_wishart" and cov in ("diag", "spherical"):
        col.add(
            f'[priors] variance: "inverse_wishart" is a prior of covariance matrices (covariance '
            f'full or tied), got covariance = "{cov}"; use variance = "inverse_gamma"'
        )


MAX_SPEC_BYTES = 1_000_000  # specs are a few hundred bytes; refuse anything absurd unread


def load_spec(path: str | Path) -> RunSpec:
    """Read a TOML run spec; relative data paths are resolved against the spec's folder.

    Parameters
    ----------
    path : path
        The ``.toml`` file. The run name defaults to the file stem.

    Returns
    -------
    RunSpec

    Raises
    ------
    SpecError
        Missing file, a file over ``MAX_SPEC_BYTES`` (1 MB), invalid TOML, or every problem
        found by :func:`spec_from_dict`.
    """
    p = Path(path)
    if not p.is_file():
        raise _spec_error(
            [f"spec file {str(p)!r} not found: expected an existing .toml file; check the path"],
            p.stem,
        )
    size = p.stat().st_size
    if size > MAX_SPEC_BYTES:
        raise _spec_error(
            [
                f"spec file {p.name} is too large ({size} bytes): expected at most "
                f"{MAX_SPEC_BYTES} bytes; a spec names its data file, it does not contain it"
            ],
            p.stem,
        )
    try:
        d = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise _spec_error([f"{p.name} is not valid TOML: {exc}; fix the syntax"], p.stem) from exc
    return spec_from_dict(d, name=d.get("name", p.stem), base_dir=p.parent)


# ---------------------------------------------------------------------------------------------
# priors


def resolve_priors(
    model_spec: ModelSpec, X: np.ndarray, sample_weight: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The prior hyper-parameters as numbers, with ``None`` entries scaled to the data.

    This is the single place where data-scaled defaults are computed (see :class:`PriorSpec`);
    :func:`bayesmix.graphs.build_model` and :func:`bayesmix.inference.fit_em` both use it.

    Parameters
    ----------
    model_spec : ModelSpec
    X : ndarray of shape (N, D)
        The data (already validated).
    sample_weight : ndarray of shape (N,), optional
        Frequency weights (checked): the data-scaled numbers are those of the repeated rows.

    Returns
    -------
    dict of str to ndarray
        ``weights_alpha`` (K,) always (the concentration, or e0 of a sparse mixture);
        ``weights_alpha_prior`` (2,) for a sparse mixture with a Gamma prior on e0;
        ``dp_alpha_prior`` (2,) for a DP mixture. Gaussian: ``mu_loc`` (D,), ``mu_scale`` (D,),
        ``sigma_scale`` (D,) or () for spherical covariances, and ``lkj_eta`` () for full
        covariances with D > 1. Bernoulli: ``beta_a`` (), ``beta_b`` ().
    """
    pr = model_spec.priors
    X = np.asarray(X, dtype=float)
    k = model_spec.n_components
    if pr.weights not in WEIGHT_PRIORS:
        raise ParameterError(
            f"weights={pr.weights!r} is not a weights prior: expected one of "
            f"{', '.join(WEIGHT_PRIORS)}; pass one of them"
        )
    if pr.weights_alpha is not None:
        alpha = np.asarray(pr.weights_alpha, dtype=float)
    else:
        alpha = np.asarray(SPARSE_ALPHA_DEFAULT if pr.weights == "sparse" else 1.0)
    if alpha.ndim == 0:
        alpha = np.full(k, float(alpha))
    elif alpha.shape != (k,):
        raise _spec_error(
            [f"[priors] weights_alpha: expected a number or {k} numbers, got {alpha.shape[0]}"]
        )
    out: dict[str, np.ndarray] = {"weights_alpha": alpha}
    if pr.weights == "sparse" and pr.weights_alpha_prior is not None:
        out["weights_alpha_prior"] = np.asarray(pr.weights_alpha_prior, dtype=float)
    if pr.weights == "dp":
        out["dp_alpha_prior"] = np.asarray(pr.dp_alpha_prior, dtype=float)
    fam = get_family(model_spec.family)
    out.update(fam.resolve_priors(pr, X, k, model_spec.covariance, sample_weight=sample_weight))
    return out
