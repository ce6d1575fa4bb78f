"""Gaussian mixtures fitted by EM (maximum likelihood) or MAP-EM (``prior`` given).

Parameters follow scikit-learn's conventions for each ``covariance_type``:

=============  ====================  =====================  ==============================
type           ``covariances_``      ``precisions_``        ``precisions_cholesky_``
=============  ====================  =====================  ==============================
full           (K, D, D)             (K, D, D)              (K, D, D), upper, P = U U^T
tied           (D, D)                (D, D)                 (D, D), upper
diag           (K, D)                (K, D)                 (K, D) = 1/sqrt(var)
spherical      (K,)                  (K,)                   (K,)
=============  ====================  =====================  ==============================

R mclust's other models (``covariance_type="EEV"`` etc.; :mod:`bayesmix.em.covariance_models`)
use the layout, the E-step and the statistics of the kind in their ``kernel`` (e.g. VEV:
full, EEI: diag, EII: spherical) and their own M-step from those statistics: the constrained
maximiser of the expected complete-data log-likelihood (Celeux & Govaert 1995), with inner
iterations warm-started at the current covariances for VEI, VEE, EVE, VVE and VEV, each of
which never decreases it, so EM stays monotone. ``reg_covar`` enters those M-steps as
``reg_covar * n_k * I`` added to each scatter, which keeps the model's constraints (for the
four scikit-learn models it is the same as adding it to the variances).

Speed, memory and accuracy. One EM iteration is a single pass over blocks of ``chunk_size``
rows (E-step and M-step fused, :func:`fused_statistics`), with scratch buffers reused across
blocks and iterations. No (N, K) or (N, K, D) array is made during ``fit``. Each pass takes
one of two routes, chosen from the current parameters:

* residual route (always sound): per block, the residuals ``z_k = x - mu_k`` about every
  component's current mean. The E-step uses them whitened, ``U_k^T z_k`` (full/tied, never an
  expanded quadratic form) or squared (diag/spherical); the M-step accumulates ``n_k``,
  ``sum r z_k`` and ``S_k = sum r z_k z_k^T`` about the current means ``mu_k`` and gives the
  new mean ``mu_k + sum r z_k / n_k`` and the scatter ``S_k - n_k d_k d_k^T`` with the small
  change ``d_k`` of the mean (no cancellation: clusters 1e8 apart or data at 1e9 with noise
  1e-2 keep the digits of their spread). Full/tied work one component at a time on (D, b)
  arrays that stay in cache, with the BLAS routines for triangular and symmetric products
  (half the flops of general ones): ``?trmm`` whitens, ``?syrk`` on ``[sqrt(r) z_k;
  sqrt(r)]`` gives ``S_k``, ``sum r z_k`` and ``n_k`` in one call; blocks of about
  2**16 / (D + 1) rows. Diag/spherical residual passes use (K, D, b) arrays.
* fast route (when it loses at most a fifth of the digits): one feature matrix per block
  about the data mean ``c`` serves both steps, ``F_b = [1, x - c, (x - c)^2]``
  (diag/spherical) or ``[1, x - c, upper triangle of (x - c)(x - c)^T]`` (full/tied with
  ``K D >= 0.4 Q``, ``Q = 1 + D + D (D + 1) / 2``): ``F_b^T W`` evaluates every component's
  quadratic form and ``F_b r_b`` every sufficient statistic (about c). Its loss of digits is
  about ``eps * max_k ||U_k^T (mu_k - c)||^2`` (the squared Mahalanobis distance of a mean
  from c), so it is used only while that distance is at most ``eps^(-1/5)`` (1.3e3 in float64,
  24 in float32); see ``_prepare_fast``.

``score_samples``/``predict_proba`` use the residual route, one component at a time, and so
does ``predict``, except that diag/spherical labels come from the fast route where the fit
used it and the rows lie within its limit from c (the digits of the fit's own E-steps). A
covariance that overflows (data whose squared spread exceeds the floating-point range) raises
a DataError; after a fit, empty components give a
:class:`bayesmix.em.DegenerateComponentWarning`, and components collapsed onto repeated points
or a line (a variance of ``reg_covar`` in some direction) its subclass
:class:`bayesmix.em.CollapsedComponentWarning`.

Other array types. ``fit`` also accepts a Dask array (statistics per row-chunk with
``map_blocks``, one ``compute`` per iteration; out of core or on a ``dask.distributed``
cluster; initial parameters must be given) and a JAX array (jitted statistics on the array's
device, see ``bayesmix.em._xp``); the M-step runs in NumPy on the small statistics. Neither
library is imported unless such an array is given.

Missing values (``missing="model"``, NumPy input): a NaN entry is missing at random. A row's
density is the Gaussian marginal of its observed coordinates o, ``N(x_o | mu_ko,
Sigma_k,oo)``; rows are grouped by their pattern of observed features (one Cholesky factor of
``Sigma_oo`` per pattern and component; rows without NaN use the kernels above). Each
iteration is an E-step, then the exact EM M-step for missing data (Ghahramani & Jordan 1994;
McLachlan & Krishnan 2008, ch. 2): at the current parameters, ``E[x_m | x_o, z = k] = mu_km +
S_mo S_oo^{-1} (x_o - mu_ko)`` and ``C = S_mm - S_mo S_oo^{-1} S_om`` give the statistics
``n_k``, ``sum r x^`` and ``sum r (x^ x^^T + C)`` (C in the missing rows and columns), and
the formulas below (every covariance type, ML or MAP) turn them into new parameters, so the
observed-data objective never decreases. The starting values use each missing entry's column
mean. Without NaN the computation is the one above, bit for bit.

MAP-EM (``prior`` dict; every key optional, absent or None means flat):

``weights_alpha`` (scalar or (K,)) : ``w ~ Dirichlet(alpha)``.
    Update ``w_k = max(n_k + alpha_k - 1, 0) / sum_j max(n_j + alpha_j - 1, 0)``
    (use ``alpha >= 1``: with ``alpha_k < 1`` the density is unbounded at ``w_k = 0``).
``mu_loc`` (D,), ``mu_scale`` (D,) : ``mu_kd ~ Normal(mu_loc_d, mu_scale_d)`` independently
    (the prior is active when ``mu_scale`` is given; ``mu_loc`` defaults to 0).
    Update given the current covariance: diag/spherical
    ``mu_kd = (sx_kd / var_kd + loc_d / s_d^2) / (n_k / var_kd + 1 / s_d^2)`` with
    ``sx_k = sum_n r_nk x_n``; full/tied
    ``mu_k = (n_k P_k + S0^{-1})^{-1} (P_k sx_k + S0^{-1} loc)`` with ``S0 = diag(s^2)``.
``sigma_scale`` (D,) (diag; spherical: a scalar or equal values; full/tied only for 1-D data):
    ``sigma_kd ~ HalfNormal(sigma_scale_d)`` on the standard deviation. Given the means, with
    ``n = n_k``, ``S = sum_n r_nk (x_nd - mu_kd)^2`` and ``t = sigma_scale_d``, the maximiser
    of ``-n log s - S / (2 s^2) - s^2 / (2 t^2)`` is
    ``s^2 = (t^2/2) (-n + sqrt(n^2 + 4 S / t^2)) = 2 S / (n + sqrt(n^2 + 4 S / t^2))``
    (spherical: ``n -> n D``, S summed over d).
``cov_prior_dof`` (nu > D - 1), ``cov_prior_scale`` (D, D) or scalar (times identity)
    (full/tied): ``Sigma_k ~ InverseWishart(nu, Psi)``. Update given the means:
    ``Sigma_k = (Psi + S_k) / (n_k + nu + D + 1)``
    (tied: ``(Psi + sum_k S_k) / (N + nu + D + 1)``).

Each M-step updates weights, then means given the current covariances, then covariances given
the new means; each is a conditional maximisation of the log posterior (ECM), so the log
posterior never decreases (exactly when ``reg_covar=0``; ``reg_covar`` is added to the
variances after the update). ``lower_bounds_`` then holds the mean log posterior per sample,
``(log p(X | theta) + log p(theta)) / N``, with every normalising constant of the prior
densities included (what PyMC's ``model.logp(jacobian=False)`` gives, divided by N).
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Any

import numpy as np
from scipy import stats as sps
from scipy.special import gammaln, softmax, xlogy

from bayesmix._validation import (
    DataError,
    ParameterError,
    check_n_components,
    check_positive,
    check_X,
)
from bayesmix.em._base import (
    _BLOCK_ELEMENTS,
    _EMPTY_COUNT,
    BaseMixtureEM,
    CollapsedComponentWarning,
    check_prior_dict,
    covariance_from_vector,
    covariance_to_vector,
    fill_column_means,
    log_nonnegative,
    row_blocks,
)
from bayesmix.em._gaussian_kernels import (
    _OPS,
    _check_finite_covariances,
    _covariance_stack,
    _covariances_from_pc_matrix,
    _fast_log_prob_t,
    _halfnormal_variance,
    _is_dask,
    _is_jax,
    _log_prob_block,
    _log_prob_t,
    _missing_log_prob,
    _missing_rows,
    _missing_statistics,
    _prec_chol_from_precisions_matrix,
    _precisions_full,
    _prepare_fast,
    _statistics_two_pass,
    fused_statistics,
    fused_unpack,
)

__all__ = ["GaussianMixtureEM"]

# the models whose M-step is scikit-learn's (and the MAP-EM priors'): mclust name -> the
# scikit-learn name whose code below they run, bit for bit as before the other models came
_LEGACY = {"VVV": "full", "EEE": "tied", "VVI": "diag", "VII": "spherical", "V": "spherical"}
PRIOR_KEYS = (
    "weights_alpha",
    "mu_loc",
    "mu_scale",
    "sigma_scale",
    "cov_prior_dof",
    "cov_prior_scale",
)
_SKLEARN_NAMES = ("full", "tied", "diag", "spherical")


def _get_model(name: str, n_features: int | None = None):
    """``bayesmix.em.covariance_models.get_model`` (imported when a model is first needed)."""
    from bayesmix.em.covariance_models import get_model

    return get_model(name, n_features)


_HC_MAX_ROWS = 2000  # hierarchical starts: at most this many rows (O(N^2) pairs)
_HC_TREES: dict[tuple, Any] = {}  # the last few trees: a table over models and K builds one


def _quantile_classes(x: np.ndarray, k: int) -> np.ndarray:
    """R mclust's one-feature start (``qclass``): K classes cut at quantiles of x, 0..K-1.

    The K + 1 cut points are the distinct quantiles of an equally spaced grid of
    probabilities, the grid refined until there are at least K + 1; any extra cuts are those
    closest to their left neighbour (ties: the first). The end points are moved out by
    ``sd(x) sqrt(eps)``.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    eps = np.std(x, ddof=1) * np.sqrt(np.finfo(np.float64).eps) if x.size > 1 else 0.0
    n = k
    q = np.array([np.nan])
    while q.size < k + 1:
        n += 1
        q = np.unique(np.quantile(x, np.linspace(0.0, 1.0, n)))
        if n > x.size + k + 1:  # fewer than K + 1 distinct values: no more cuts to find
            break
    if q.size > k + 1:
        drop = np.argsort(np.diff(q), kind="stable")[: q.size - k - 1]
        q = np.delete(q, drop)
    q[0], q[-1] = x.min() - eps, x.max() + eps
    return np.clip(np.searchsorted(q, x, side="right") - 1, 0, k - 1)


def _hc_tree(X: np.ndarray):
    """The default hierarchical clustering of R mclust on X (VVV; V for one feature), cached."""
    from bayesmix.em.hc import hc

    key = (X.shape, hashlib.sha256(np.ascontiguousarray(X).tobytes()).hexdigest())
    tree = _HC_TREES.get(key)
    if tree is None:
        tree = hc(X, model="VVV" if X.shape[1] > 1 else "V")
        if len(_HC_TREES) >= 4:
            _HC_TREES.pop(next(iter(_HC_TREES)))
        _HC_TREES[key] = tree
    return tree


class GaussianMixtureEM(BaseMixtureEM):
    """Gaussian mixture fitted by EM (or MAP-EM with ``prior``).

    Parameters
    ----------
    n_components : int, default 1
    covariance_type : str, default "full"
        One of R mclust's 14 models ``Sigma_k = lambda_k D_k A_k D_k^T`` (volume, shape,
        orientation; E equal, V varying, I identity): "EII", "VII", "EEI", "VEI", "EVI",
        "VVI", "EEE", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV"; "E" and "V" for one
        feature; or scikit-learn's names "full" (VVV), "tied" (EEE), "diag" (VVI),
        "spherical" (VII). ``covariances_`` is laid out as scikit-learn's for the matching
        kind: (K, D, D) for the models with orientations other than I (except EEE: (D, D)),
        (K, D) for the diagonal ones, (K,) for EII/VII/E/V. Table and M-steps:
        :mod:`bayesmix.em.covariance_models`. ``prior`` and ``accelerate`` need one of the
        four scikit-learn models.
    tol : float, default 1e-3
        Stop when the objective (mean log-likelihood, or mean log posterior, per sample)
        changes by less than ``tol`` (must be > 0).
    reg_covar : float, default 1e-6
        Added to the diagonal of every covariance after each update (0 allowed).
    max_iter : int, default 100
    n_init : int, default 1
        Number of initialisations; the run with the highest final objective is kept.
    init_params : {"k-means++", "kmeans", "random", "random_from_data", "hc"}, default "k-means++"
        How the first responsibilities are made: "kmeans" runs :class:`bayesmix.em.KMeans`;
        "k-means++" (:func:`bayesmix.em.kmeans_plusplus`) and "random_from_data" pick K
        seed rows and assign every row to its nearest seed (scikit-learn gives only the seed
        rows a responsibility); "random" draws uniform responsibilities; "hc" is mclust's
        start, the K-cluster partition of the model-based hierarchical clustering
        (:func:`bayesmix.em.hc.hc`, VVV on the scaled SVD of the data; deterministic; above
        2,000 rows on a random subset of 2,000, as mclust's ``initialization$subset``; one
        feature: mclust's quantile classes), and with ``n_init > 1`` the further starts are
        "kmeans".
    weights_init : array-like of shape (K,), optional
    means_init : array-like of shape (K, D), optional
    precisions_init : array-like, optional
        Shape as ``precisions_`` for the covariance type.
    random_state : None, int, numpy Generator or RandomState
    warm_start : bool, default False
        Start from the previous solution on repeated ``fit`` calls (``n_init`` ignored).
    verbose : int, default 0
    prior : dict, optional
        MAP-EM priors (see the module docstring): ``weights_alpha``, ``mu_loc``, ``mu_scale``,
        ``sigma_scale``, ``cov_prior_dof``, ``cov_prior_scale``. None: maximum likelihood.
    dtype : numpy dtype, default numpy.float64
        ``numpy.float32`` halves memory and time at lower precision (the data are converted
        to it).
    chunk_size : int, optional
        Rows per block in the E- and M-steps (bounds the temporaries; the results are the
        same up to rounding). Default: about 2**18 elements of the widest per-block
        temporary: the fast route's features (e.g. 3971 rows for D = 10, full), the (K, D, b)
        diag/spherical residuals; full/tied residuals and predictions, one component at a
        time: about 2**16 / (D + 1) rows. On JAX arrays: rows per chunk of the jitted
        statistics (default about 2**26 / (K D)).
    missing : {"error", "model"}, default "error"
        "model": NaN entries are missing at random; a row's density is that of its observed
        coordinates and the M-step is exact EM for missing data (see the module docstring),
        in ``fit`` and in every method that takes X (NumPy input only). "error": NaN is a
        DataError.
    accelerate : {None, "squarem"}, default None
        "squarem": SQUAREM-accelerated EM (see :class:`bayesmix.em.BaseMixtureEM`), which
        extrapolates in log weights, means and log-Cholesky factors (full, tied) or log
        variances (diag, spherical); far fewer iterations where plain EM is slow
        (overlapping components). None: plain EM.

    Attributes
    ----------
    weights_ : ndarray of shape (K,)
    means_ : ndarray of shape (K, D)
    covariances_, precisions_, precisions_cholesky_ : ndarray
        Shapes as in scikit-learn (see the module docstring).
    converged_ : bool
    n_iter_ : int
        Number of EM iterations of the best run (with ``accelerate="squarem"``: evaluations
        of the EM map, rejected extrapolations included).
    lower_bound_ : float
        Objective of the best run at its last iteration.
    lower_bounds_ : ndarray of shape (n_iter_,)
        Objective at each iteration of the best run (with ``accelerate="squarem"``: at each
        accepted one, so possibly fewer than ``n_iter_``).
    n_features_in_ : int
    """

    # the fused _em_step applies self._sample_weight (fused_statistics' sample_weight)
    _em_step_handles_sample_weight = True
    _supports_missing = True

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "full",
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "k-means++",
        weights_init: Any = None,
        means_init: Any = None,
        precisions_init: Any = None,
        random_state: Any = None,
        warm_start: bool = False,
        verbose: int = 0,
        prior: dict | None = None,
        dtype: Any = np.float64,
        chunk_size: int | None = None,
        missing: str = "error",
        accelerate: str | None = None,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.prior = prior
        self.dtype = dtype
        self.chunk_size = chunk_size
        self.missing = missing
        self.accelerate = accelerate

    # ------------------------------------------------------------------ covariance model
    @property
    def _cov_model(self):
        """The covariance model (``bayesmix.em.covariance_models``) of ``covariance_type``."""
        return _get_model(self.covariance_type)

    @property
    def _kernel(self) -> str:
        """Layout of ``covariances_`` and of the E-step: full, tied, diag or spherical."""
        if self.covariance_type in _SKLEARN_NAMES:
            return self.covariance_type
        return _get_model(self.covariance_type).kernel

    @property
    def _legacy(self) -> str | None:
        """The scikit-learn name whose M-step the model is, or None (a constrained model)."""
        if self.covariance_type in _SKLEARN_NAMES:
            return self.covariance_type
        return _LEGACY.get(_get_model(self.covariance_type).name)

    # ------------------------------------------------------------------ checks
    def _check_X(self, X, *, fitting):
        dtype = np.dtype(self.dtype) if self.dtype is not None else np.float64
        if dtype not in (np.float32, np.float64):
            raise ParameterError(
                f"dtype is not supported: expected numpy.float64 or numpy.float32, got "
                f"{self.dtype!r}; pass one of them"
            )
        if fitting:
            return check_X(
                X,
                n_components=self.n_components,
                # constant columns make full/tied covariances singular unless reg_covar > 0
                covariance_type=self._kernel if self.reg_covar == 0 else None,
                dtype=dtype,
                min_samples=2,
                allow_nan=self._allow_nan(),
            )
        return check_X(X, dtype=dtype, allow_nan=self._allow_nan())

    def _check_family_parameters(self, X):
        if self.covariance_type not in _SKLEARN_NAMES:
            try:
                _get_model(self.covariance_type, X.shape[1])
            except ValueError as err:
                raise ParameterError(str(err)) from None
        if self.accelerate is not None and self._legacy is None:
            raise ParameterError(
                f"accelerate='{self.accelerate}' is not supported with covariance_type="
                f"'{self.covariance_type}': expected 'full' (VVV), 'tied' (EEE), 'diag' (VVI) "
                "or 'spherical' (VII) for SQUAREM, whose extrapolation ignores the other "
                "models' constraints; use accelerate=None"
            )
        check_positive(self.reg_covar, "reg_covar", strict=False)
        k, d = self.n_components, X.shape[1]
        if self.weights_init is not None:
            w = np.asarray(self.weights_init, dtype=np.float64)
            if w.shape != (k,) or np.any(w < 0) or not np.isclose(w.sum(), 1.0, atol=1e-6):
                raise ParameterError(
                    f"weights_init is invalid: expected {k} non-negative weights summing to 1, "
                    f"got shape {w.shape} and sum {w.sum():.6g}; pass a probability vector"
                )
        if self.means_init is not None:
            m = np.asarray(self.means_init, dtype=np.float64)
            if m.shape != (k, d) or not np.all(np.isfinite(m)):
                raise ParameterError(
                    f"means_init is invalid: expected finite values of shape {(k, d)}, got "
                    f"shape {m.shape}; pass one mean per component"
                )
        if self.precisions_init is not None:
            p = np.asarray(self.precisions_init, dtype=np.float64)
            expected = {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}[
                self._kernel
            ]
            if p.shape != expected:
                raise ParameterError(
                    f"precisions_init has the wrong shape for covariance_type="
                    f"'{self.covariance_type}': expected {expected}, got {p.shape}; pass "
                    "precisions shaped like precisions_"
                )
            if self._kernel in ("full", "tied"):
                mats = p.reshape(-1, d, d)
                if not np.allclose(mats, np.swapaxes(mats, -1, -2)) or np.any(
                    np.linalg.eigvalsh(mats) <= 0
                ):
                    raise ParameterError(
                        "precisions_init is invalid: expected symmetric positive definite "
                        "matrices, got a matrix that is not; pass valid precisions"
                    )
            elif np.any(~(p > 0)):
                raise ParameterError(
                    "precisions_init is invalid: expected positive values, got a value <= 0; "
                    "pass positive precisions"
                )
        self._prior = self._resolve_prior(d)

    def _resolve_prior(self, d: int) -> dict | None:
        """Validate ``prior`` and return it with arrays of the right shapes (or None)."""
        if self.prior is None:
            return None
        check_prior_dict(self.prior, PRIOR_KEYS, "{'weights_alpha': 2.0}")
        k, ctype = self.n_components, self._kernel
        if self._legacy is None:
            raise ParameterError(
                f"prior is not supported with covariance_type='{self.covariance_type}': "
                "expected one of the models with a MAP-EM prior, 'full' (VVV), 'tied' (EEE), "
                "'diag' (VVI) or 'spherical' (VII); drop prior for maximum likelihood"
            )
        out: dict[str, Any] = {}

        def vector(key, length, positive):
            value = np.asarray(self.prior[key], dtype=np.float64)
            if value.ndim == 0:
                value = np.full(length, float(value))
            if value.shape != (length,) or not np.all(np.isfinite(value)):
                raise ParameterError(
                    f"prior['{key}'] has the wrong shape: expected a scalar or shape "
                    f"({length},), got shape {value.shape}; pass one finite value per "
                    f"{'component' if key == 'weights_alpha' else 'feature'}"
                )
            if positive and np.any(value <= 0):
                raise ParameterError(
                    f"prior['{key}'] must be positive: expected values > 0, got "
                    f"{value.tolist()}; pass positive values"
                )
            return value

        get = self.prior.get
        if get("weights_alpha") is not None:
            out["weights_alpha"] = vector("weights_alpha", k, True)
        if get("mu_scale") is not None:
            out["mu_scale"] = vector("mu_scale", d, True)
            out["mu_loc"] = (
                vector("mu_loc", d, False) if get("mu_loc") is not None else np.zeros(d)
            )
        if get("sigma_scale") is not None:
            if ctype in ("full", "tied") and d > 1:
                raise ParameterError(
                    f"prior['sigma_scale'] is not supported with covariance_type='{ctype}' "
                    f"and {d} features: expected diag/spherical covariances or 1-D data; with "
                    "full/tied use 'weights_alpha', 'mu_loc', 'mu_scale', 'cov_prior_dof' and "
                    "'cov_prior_scale'"
                )
            t = vector("sigma_scale", d, True)
            if ctype == "spherical" and not np.allclose(t, t[0]):
                raise ParameterError(
                    "prior['sigma_scale'] must be one value with covariance_type='spherical': "
                    f"expected a scalar, got {t.tolist()}; pass a single scale"
                )
            out["sigma_scale"] = t
        dof, scale = get("cov_prior_dof"), get("cov_prior_scale")
        if dof is not None or scale is not None:
            if ctype not in ("full", "tied"):
                raise ParameterError(
                    f"prior['cov_prior_dof'/'cov_prior_scale'] needs covariance_type 'full' or "
                    f"'tied': got '{ctype}'; use 'sigma_scale' for diag/spherical"
                )
            if "sigma_scale" in out:
                raise ParameterError(
                    "prior has both 'sigma_scale' and an inverse-Wishart prior: expected one "
                    "prior on the covariance, got two; drop one of them"
                )
            if dof is None or scale is None:
                raise ParameterError(
                    "inverse-Wishart prior is incomplete: expected both 'cov_prior_dof' and "
                    "'cov_prior_scale', got only one; pass both"
                )
            dof = float(dof)
            if not dof > d - 1:
                raise ParameterError(
                    f"prior['cov_prior_dof'] is too small: expected a value > n_features - 1 = "
                    f"{d - 1}, got {dof}; pass a larger value"
                )
            psi = np.asarray(scale, dtype=np.float64)
            if psi.ndim == 0:
                psi = float(psi) * np.eye(d)
            if (
                psi.shape != (d, d)
                or not np.allclose(psi, psi.T)
                or np.any(np.linalg.eigvalsh(psi) <= 0)
            ):
                raise ParameterError(
                    f"prior['cov_prior_scale'] is invalid: expected a positive scalar or a "
                    f"symmetric positive definite ({d}, {d}) matrix, got shape {psi.shape}; "
                    "pass e.g. numpy.eye(n_features)"
                )
            out["cov_prior_dof"], out["cov_prior_scale"] = dof, psi
        return out

    # ------------------------------------------------------------------ parameters
    def _needs_initial_resp(self):
        return self.weights_init is None or self.means_init is None or self.precisions_init is None

    # ------------------------------------------------------------------ Dask and JAX input
    def _validate_fit_data(self, X):
        if _is_dask(X) or _is_jax(X):
            self._missing_now = False
            if self._allow_nan():
                kind = "dask" if _is_dask(X) else "JAX"
                raise ParameterError(
                    f"missing='model' is not supported with {kind} arrays: expected a NumPy "
                    f"array X for missing values, got a {kind} array; fit numpy.asarray(X), or "
                    "use missing='error' with complete data"
                )
            if _is_dask(X):
                from bayesmix.em._dask import validate_dask as validate
            else:
                from bayesmix.em._xp import validate_jax as validate
            check_n_components(self.n_components)
            X, self._input_mean = validate(self, X)
            self.n_features_in_ = X.shape[1]
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
            return X
        self._input_mean = None
        return super()._validate_fit_data(X)

    def _check_sample_weight(self, sample_weight, X):
        if sample_weight is not None and (_is_dask(X) or _is_jax(X)):
            kind = "dask" if _is_dask(X) else "JAX"
            raise ParameterError(
                f"sample_weight is not supported with {kind} arrays: expected a NumPy array X "
                f"with sample_weight, got a {kind} array; repeat the rows instead or fit a "
                "NumPy array"
            )
        return super()._check_sample_weight(sample_weight, X)

    _init_choices = ("k-means++", "kmeans", "random", "random_from_data", "hc")

    def _initial_resp(self, X, rng, method=None):
        """``init_params="hc"``: run 0 from mclust's hierarchical start, the others k-means."""
        if (self.init_params if method is None else method) != "hc":
            return super()._initial_resp(X, rng, method)
        if getattr(self, "_init_run", 0) > 0:  # further restarts: k-means from k-means++
            return super()._initial_resp(X, rng, "kmeans")
        if self._missing_now:  # as every start: each missing value at its column's mean
            X = fill_column_means(X, self._sample_weight)
        n, k = X.shape[0], self.n_components
        rows = np.arange(n)
        if n > _HC_MAX_ROWS:  # as mclust's initialization subset: hc on a random subset
            rows = np.sort(rng.choice(n, size=_HC_MAX_ROWS, replace=False))
        Xs = np.asarray(X[rows], dtype=np.float64)
        if Xs.shape[1] == 1:  # as mclust in one dimension: quantile classes, not hc
            labels = _quantile_classes(Xs[:, 0], k)
        else:
            from bayesmix.em.hc import hclass

            labels = hclass(_hc_tree(Xs), k)
        resp = np.zeros((n, k), dtype=X.dtype)
        resp[rows, labels] = 1.0  # rows outside the subset: no weight in the first M-step
        return resp

    def _initialize_parameters(self, X, rng):
        if _is_dask(X):
            from bayesmix.em._dask import check_dask_init

            check_dask_init(self)
        elif _is_jax(X) and self._needs_initial_resp():
            # the initialisation (k-means++ / k-means) runs in NumPy on a host copy
            X = np.asarray(X)
        super()._initialize_parameters(X, rng)

    def _predict_labels(self, X):
        if _is_dask(X):
            from bayesmix.em._dask import dask_predict_labels

            return dask_predict_labels(self, X)
        if _is_jax(X):
            from bayesmix.em._xp import jax_predict_labels

            return jax_predict_labels(self, X)
        if self._missing_now:  # rows with NaN: the densities of their observed coordinates
            return super()._predict_labels(X)
        # as BaseMixtureEM._predict_labels, with scratch buffers reused across blocks; diag/
        # spherical labels by the fast route where the fit used it and every row of the block
        # is within its limit (see _fast_log_prob_t), else by the residual route
        labels = np.empty(X.shape[0], dtype=np.intp)
        log_w = self._estimate_log_weights().astype(X.dtype, copy=False)[:, None]
        workspace: dict = {}
        d = X.shape[1]
        fast = self._estep.get("fast")
        if fast is not None and not fast["products"]:
            prec_max = self._estep["prec"][:, 0, :].max(axis=0)
            # features (1 + 2 D, b) and log densities (K, b): about 2**18 elements
            block = max(64, _BLOCK_ELEMENTS // max(1 + 2 * d, 2 * self.n_components))
            if self.chunk_size is not None:
                block = int(self.chunk_size)
        else:
            fast, block = None, self._predict_block_size(d)
        for rows in row_blocks(X.shape[0], block):
            logp = None if fast is None else _fast_log_prob_t(X[rows], fast, prec_max, workspace)
            if logp is None:
                logp = _log_prob_t(X[rows], self._estep, workspace)
            logp += log_w
            labels[rows] = logp.argmax(axis=0)
        return labels

    def _fit_prepare(self, X):
        mean = getattr(self, "_input_mean", None)
        w = self._sample_weight
        if mean is not None:
            self._shift = mean.astype(X.dtype)
        elif self._missing_now:  # the (weighted) means of the observed values
            self._shift = np.average(fill_column_means(X, w), axis=0, weights=w).astype(X.dtype)
        elif w is None:
            self._shift = X.mean(axis=0)
        else:  # the weighted mean: the mean of the data set with repeated rows
            self._shift = np.average(X, axis=0, weights=w).astype(X.dtype)
        if hasattr(self, "precisions_cholesky_"):  # warm start: E-step arrays in X's dtype
            self._prepare()

    def _initialize(self, X, resp):
        if self._missing_now:  # no parameters to condition on yet: each NaN at its column mean
            X = fill_column_means(X, self._sample_weight)
        dtype = X.dtype
        ops = _OPS[self._kernel]
        if resp is not None:
            st = _statistics_two_pass(
                self._kernel, X, resp, self._shift, self._block_size(X.shape[1])
            )
            st.nk += 10 * np.finfo(dtype).eps
            delta = st.sx / st.nk[:, None]
            weights = st.nk / self._n_observations(X.shape[0])
            cov = self._ml_covariance(ops.scatter(st, delta), st.nk)
            means = st.ref + delta
        if self.weights_init is not None:
            weights = np.asarray(self.weights_init, dtype=dtype)
        if self.means_init is not None:
            means = np.asarray(self.means_init, dtype=dtype)
        self.weights_ = np.asarray(weights, dtype=dtype)
        self.means_ = np.asarray(means, dtype=dtype)
        if self.precisions_init is None:
            self.covariances_ = np.asarray(cov, dtype=dtype)
            _check_finite_covariances(self.covariances_, self._kernel)
            self.precisions_cholesky_ = ops.prec_chol(self.covariances_)
        else:
            prec = np.asarray(self.precisions_init, dtype=dtype)
            if self._kernel in ("full", "tied"):
                self.precisions_cholesky_ = _prec_chol_from_precisions_matrix(prec)
                self.covariances_ = _covariances_from_pc_matrix(self.precisions_cholesky_)
            else:
                self.precisions_cholesky_ = np.sqrt(prec)
                self.covariances_ = 1.0 / prec
        self._prepare()

    def _ml_covariance(self, scatter, nk, previous=None):
        reg = self.reg_covar
        ctype = self._legacy
        if ctype is None:  # a constrained model: its own M-step (inner iterations warm-started)
            return self._cov_model.m_step(scatter, nk, reg, previous)
        if ctype == "full":
            cov = scatter / nk[:, None, None]
            cov += reg * np.eye(cov.shape[-1], dtype=cov.dtype)
        elif ctype == "tied":
            cov = scatter / nk.sum() + reg * np.eye(scatter.shape[-1], dtype=scatter.dtype)
        elif ctype == "diag":
            cov = scatter / nk[:, None] + reg
        else:
            cov = (scatter / nk[:, None] + reg).mean(axis=1)
        return cov

    def _em_step(self, X, workspace):
        """One EM iteration in a single pass over blocks of rows (E-step and M-step fused).

        For each block: component log densities, in-place normalisation to responsibilities,
        and the block's contribution ``F_b r_b`` to every sufficient statistic; then the
        M-step from the statistics. No (N, K) array is made. With NaN entries or partial
        labels: the E-step, then :meth:`_m_step` (``BaseMixtureEM._em_step``).
        """
        if self._missing_now or self._labels is not None:
            return super()._em_step(X, workspace)
        n, d = X.shape
        if _is_jax(X):  # statistics on the array's device, M-step here
            from bayesmix.em._xp import jax_em_statistics

            total, st = jax_em_statistics(self, X)
        else:
            if _is_dask(X):  # one compute per iteration over the row-chunks
                from bayesmix.em._dask import dask_em_statistics

                total, g = dask_em_statistics(self, X)
            else:
                total, g = fused_statistics(
                    X,
                    self._estep,
                    self._estimate_log_weights().astype(X.dtype, copy=False),
                    self._kernel,
                    self.n_components,
                    self._pass_block_size(d),
                    workspace.setdefault("scratch", {}),
                    self._sample_weight,
                )
            st = fused_unpack(self._kernel, g, d, self.n_components, self._estep)
        objective = self._objective_from_sum(total, self._n_observations(n))
        self._update_parameters(st, np.dtype(X.dtype))
        return objective

    def _m_step(self, X, resp):
        """M-step from responsibilities resp (N, K); see the module docstring."""
        if self._missing_now:  # exact EM for NaN entries, at the current parameters
            k, d = self.means_.shape
            cov = _covariance_stack(self.covariances_, self._kernel, k, d)
            st = _missing_statistics(self._kernel, X, resp, self.means_, cov, self._block_size(d))
            self._update_parameters(st, X.dtype)
            return
        st = _statistics_two_pass(self._kernel, X, resp, self._shift, self._block_size(X.shape[1]))
        self._update_parameters(st, X.dtype)

    def _update_parameters(self, st, dtype):
        """M-step (ML or MAP/ECM) from sufficient statistics; formulas in the module docstring."""
        ops = _OPS[self._kernel]
        st.nk += 10 * np.finfo(dtype).eps
        prior = self._prior or {}

        # weights
        if "weights_alpha" in prior:
            w = np.maximum(st.nk + prior["weights_alpha"] - 1.0, 0.0)
        else:
            w = st.nk.copy()
        self.weights_ = (w / w.sum()).astype(dtype)

        # means (as the change from the reference points st.ref) given the current covariances
        if "mu_scale" in prior:
            delta = self._map_means(st, prior)
        else:
            delta = st.sx / st.nk[:, None]

        # covariances given the new means
        scatter = ops.scatter(st, delta)
        if {"sigma_scale", "cov_prior_dof"} & prior.keys():
            cov = self._map_covariance(scatter, st.nk, prior)
        else:
            cov = self._ml_covariance(scatter, st.nk, getattr(self, "covariances_", None))
        self.means_ = (st.ref + delta).astype(dtype)
        self.covariances_ = np.asarray(cov, dtype=dtype)
        _check_finite_covariances(self.covariances_, self._kernel)
        self.precisions_cholesky_ = ops.prec_chol(self.covariances_)
        self._prepare()

    def _map_means(self, st, prior):
        """Conditional maximiser of the log posterior in the means, covariances fixed.

        Returns the means as changes from the reference points ``st.ref`` (K, D).
        """
        loc = prior["mu_loc"] - st.ref
        prior_prec = 1.0 / prior["mu_scale"] ** 2  # (D,)
        ctype = self._kernel
        k, d = st.sx.shape
        if ctype in ("diag", "spherical"):
            var = np.broadcast_to(np.reshape(self.covariances_, (k, -1)), (k, d))
            prec = 1.0 / var
            return (st.sx * prec + loc * prior_prec) / (st.nk[:, None] * prec + prior_prec)
        prec = _precisions_full(np.asarray(self.precisions_cholesky_, dtype=np.float64))
        if ctype == "tied":
            prec = np.broadcast_to(prec, (k, d, d))
        a = st.nk[:, None, None] * prec + np.diag(prior_prec)
        b = np.einsum("kde,ke->kd", prec, st.sx) + loc * prior_prec
        return np.linalg.solve(a, b[:, :, None])[:, :, 0]

    def _map_covariance(self, scatter, nk, prior):
        """Conditional maximiser of the log posterior in the covariances, means fixed."""
        reg, ctype = self.reg_covar, self._kernel
        if "cov_prior_dof" in prior:
            dof, psi = prior["cov_prior_dof"], prior["cov_prior_scale"]
            d = psi.shape[0]
            if ctype == "full":
                cov = (psi + scatter) / (nk + dof + d + 1.0)[:, None, None]
            else:
                cov = (psi + scatter) / (nk.sum() + dof + d + 1.0)
            return cov + reg * np.eye(d)
        t = prior["sigma_scale"]
        if ctype == "diag":
            return _halfnormal_variance(nk[:, None], scatter, t) + reg
        if ctype == "spherical":
            d = scatter.shape[1]
            return _halfnormal_variance(nk * d, scatter.sum(axis=1), t[0]) + reg
        if ctype == "full":  # 1-D data
            return _halfnormal_variance(nk[:, None, None], scatter, t[0]) + reg
        return _halfnormal_variance(nk.sum(), scatter, t[0]) + reg  # tied, 1-D

    def _prepare(self):
        """Cache the stacked factors used by the E-step (after every parameter change)."""
        self._estep = _OPS[self._kernel].prepare(self.means_, self.precisions_cholesky_)
        shift = getattr(self, "_shift", None)
        if shift is not None:
            shift = shift.astype(self.means_.dtype)
        self._estep["fast"] = _prepare_fast(
            self._kernel, self.means_, self.precisions_cholesky_, shift
        )

    def _block_size(self, n_features):
        if self.chunk_size is not None:
            return int(self.chunk_size)
        if self._kernel in ("full", "tied"):
            # one component at a time on (D + 1, b) arrays: about 2**16 elements
            return max(64, (_BLOCK_ELEMENTS >> 2) // (n_features + 1))
        # the (K, D, b) residuals are the widest per-block arrays
        return max(64, _BLOCK_ELEMENTS // (self.n_components * n_features))

    def _pass_block_size(self, n_features):
        """Rows per block of one fused pass: the fast route's (Q, b) features ~2**18 elements."""
        if self.chunk_size is None and self._estep.get("fast") is not None:
            d = n_features
            q = 1 + 2 * d if self._kernel in ("diag", "spherical") else 1 + d + d * (d + 1) // 2
            # and the (K, b) log densities
            return max(64, _BLOCK_ELEMENTS // max(q, 2 * self.n_components))
        return self._block_size(n_features)

    def _predict_block_size(self, n_features):
        """Rows per block of predictions: one component at a time on (b, D) arrays."""
        if self.chunk_size is not None:
            return int(self.chunk_size)
        return max(64, (_BLOCK_ELEMENTS >> 2) // (n_features + 1))

    def _estimate_log_prob_block(self, X, out):
        if not self._missing_now:
            _log_prob_block(X, self._estep, out)
            return
        rows, observed = _missing_rows(X)
        if rows.size < X.shape[0]:  # the rows without NaN: the kernels of complete data
            complete = np.ones(X.shape[0], dtype=bool)
            complete[rows] = False
            part = np.empty((X.shape[0] - rows.size, out.shape[1]), dtype=out.dtype)
            _log_prob_block(X[complete], self._estep, part)
            out[complete] = part
        if rows.size:
            k, d = self.means_.shape
            cov = _covariance_stack(self.covariances_, self._kernel, k, d)
            out[rows] = _missing_log_prob(self._kernel, X[rows], observed, self.means_, cov)

    def _warn_degenerate(self, n_samples):
        """Warn about empty components and components collapsed onto repeated points."""
        super()._warn_degenerate(n_samples, stacklevel=6)
        if self._kernel == "tied" or not self.reg_covar > 0 or self._prior:
            return
        k, d = self.means_.shape
        w = np.asarray(self.weights_, dtype=np.float64)
        cov = np.asarray(self.covariances_, dtype=np.float64)
        # the variance in every direction: a component may collapse onto a line of points
        # (e.g. rows sharing an integer-valued feature) as well as onto repeated points
        var = np.linalg.eigvalsh(cov) if cov.ndim == 3 else cov.reshape(k, -1)
        # the variance that the data gave, without the regularisation: zero up to the
        # rounding of the data's own magnitude (repeated points) or a negligible part of
        # reg_covar
        own = var - self.reg_covar
        eps = float(np.finfo(self.means_.dtype).eps)
        magnitude = np.abs(np.asarray(self.means_, dtype=np.float64)).max(axis=1)
        tiny = np.maximum(1e-3 * self.reg_covar, (100.0 * eps * magnitude) ** 2)
        collapsed = np.flatnonzero(
            (own <= tiny[:, None]).any(axis=1) & (w * n_samples >= _EMPTY_COUNT)
        )
        if collapsed.size:
            warnings.warn(
                f"GaussianMixtureEM: component(s) {collapsed.tolist()} collapsed onto repeated "
                f"points (weights {', '.join(f'{v:.2g}' for v in w[collapsed])}): expected a "
                f"covariance estimated from the data, got reg_covar={self.reg_covar:g} alone "
                "(the likelihood is unbounded there); remove duplicated rows, use fewer "
                "components, or set reg_covar to a variance you consider negligible",
                CollapsedComponentWarning,
                stacklevel=5,
            )

    def _get_parameters(self):
        return (self.weights_, self.means_, self.covariances_, self.precisions_cholesky_)

    def _set_parameters(self, params):
        self.weights_, self.means_, self.covariances_, self.precisions_cholesky_ = params
        pc = self.precisions_cholesky_
        if self._kernel in ("full", "tied"):
            self.precisions_ = _precisions_full(pc)
        else:
            self.precisions_ = pc**2
        self._prepare()

    def _params_to_vector(self):
        matrices = self._kernel in ("full", "tied")
        return np.concatenate(
            [
                log_nonnegative(self.weights_),
                np.ravel(self.means_).astype(np.float64),
                covariance_to_vector(self.covariances_, matrices),
            ]
        )

    def _vector_to_params(self, vec):
        k, d = self.means_.shape
        dtype = self.means_.dtype
        matrices = self._kernel in ("full", "tied")
        weights, means = softmax(vec[:k]), vec[k : k + k * d].reshape(k, d)
        cov = covariance_from_vector(vec[k + k * d :], np.shape(self.covariances_), matrices)
        if cov is None or not (np.all(np.isfinite(weights)) and np.all(np.isfinite(means))):
            return False
        cov = cov.astype(dtype)
        try:
            prec_chol = _OPS[self._kernel].prec_chol(cov)
        except DataError:  # positive definite in exact arithmetic, not in floating point
            return False
        self._set_parameters((weights.astype(dtype), means.astype(dtype), cov, prec_chol))
        return True

    def _n_parameters(self):
        k, d = self.means_.shape
        if self.covariance_type in _SKLEARN_NAMES:
            cov = {
                "full": k * d * (d + 1) // 2,
                "tied": d * (d + 1) // 2,
                "diag": k * d,
                "spherical": k,
            }[self.covariance_type]
        else:
            cov = self._cov_model.n_parameters(k, d)
        return int(cov + k * d + k - 1)

    def _sample_component(self, k, n, rng):
        d = self.means_.shape[1]
        z = rng.standard_normal((n, d))
        cov = self.covariances_
        ctype = self._kernel
        if ctype == "full":
            return self.means_[k] + z @ np.linalg.cholesky(cov[k]).T
        if ctype == "tied":
            return self.means_[k] + z @ np.linalg.cholesky(cov).T
        scale = np.sqrt(np.broadcast_to(np.reshape(cov, (self.n_components, -1))[k], (d,)))
        return self.means_[k] + z * scale

    # ------------------------------------------------------------------ MAP objective
    def _log_prior(self):
        """Log prior density of the current parameters, all constants included."""
        prior = self._prior
        if not prior:
            return 0.0
        total = 0.0
        if "weights_alpha" in prior:
            a = prior["weights_alpha"]
            w = np.asarray(self.weights_, dtype=np.float64)
            total += gammaln(a.sum()) - gammaln(a).sum() + xlogy(a - 1.0, w).sum()
        if "mu_scale" in prior:
            total += sps.norm.logpdf(
                np.asarray(self.means_, dtype=np.float64), prior["mu_loc"], prior["mu_scale"]
            ).sum()
        cov = np.asarray(self.covariances_, dtype=np.float64)
        if "sigma_scale" in prior:
            t = prior["sigma_scale"]
            ctype = self._kernel
            if ctype == "diag":
                sigma, scale = np.sqrt(cov), t
            elif ctype == "spherical":
                sigma, scale = np.sqrt(cov), t[0]
            elif ctype == "full":
                sigma, scale = np.sqrt(cov[:, 0, 0]), t[0]
            else:
                sigma, scale = np.sqrt(cov[0, 0]), t[0]
            total += sps.halfnorm.logpdf(sigma, scale=scale).sum()
        if "cov_prior_dof" in prior:
            mats = cov if self._kernel == "full" else cov[None]
            total += sum(
                sps.invwishart.logpdf(c, df=prior["cov_prior_dof"], scale=prior["cov_prior_scale"])
                for c in mats
            )
        return float(total)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.missing == "model"
        return tags
