"""One compiled model per (spec, data shape, dtype) and process.

Compiling a PyMC model with Numba takes tens of seconds, sampling it a second or two. A
:class:`CompiledMixture` therefore holds the ``pm.Model`` and, compiled lazily and only once,

* the nutpie model (``nutpie.compile_pymc_model``),
* the MAP objective: ``model.logp(jacobian=False)`` and its gradient on the flat unconstrained
  vector,
* the map from the unconstrained vector to the result variables
  (:func:`bayesmix.families.result_variables`), and the map from constrained starting values
  to the unconstrained vector.

The data and the data-scaled prior numbers are ``pm.Data`` containers: :func:`get_compiled`
swaps them in (``pm.set_data`` for the PyTensor functions, ``with_data`` for nutpie) when new
data of the same shape arrive, so refits never recompile. ``n_compiles`` counts the
compilations, which the tests use to check this.

Reproducibility: Numba's ``fastmath`` is turned off for every compilation made here
(``pytensor.config.change_flags(numba__fastmath=False)``). With fastmath on, a freshly compiled
function and one loaded from PyTensor's disk cache can round differently, so the same seed
gave different draws in a cold and a warm process; without it they agree bit for bit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from bayesmix._validation import checked_data
from bayesmix.config import ModelSpec, PriorSpec, resolve_priors
from bayesmix.em import check_sample_weight
from bayesmix.families import get_family, result_variables
from bayesmix.families._base import ObservedRows
from bayesmix.graphs import (
    build_model,
    check_labels,
    effective_covariance,
    feature_labels,
    validate_data,
)
from bayesmix.graphs._mixture import hyper_variables

__all__ = ["CompiledMixture", "clear_cache", "get_compiled"]

# Every family uses the CustomDist ("custom"). For full covariances its whitened-residual
# log density beat pm.Mixture over a list of MvNormal.dist per logp+gradient evaluation
# (Numba, 1 thread): 0.028 vs 0.038 ms on Old Faithful, 0.62 vs 1.46 ms on D=5 K=3 N=1e4,
# 1.39 vs 4.71 ms on D=10 K=5 N=1e4 (benchmarks/nuts_ess.py, benchmarks/README.md).
DEFAULT_FORMULATION: dict[str, str] = {}

_CACHE: dict[tuple, CompiledMixture] = {}
# evaluations x likelihood work below which nutpie calls the log density from Python
_PYFUNC_MAX_WORK = 1e10


def _no_fastmath():
    from pytensor import config

    return config.change_flags(numba__fastmath=False)


class CompiledMixture:
    """A mixture model with its compiled functions, for one spec and one data shape.

    Parameters
    ----------
    spec : ModelSpec
    X : ndarray of shape (N, D)
        Validated data.
    feature_names : sequence of str, optional
    formulation : {"custom", "mixture"}, optional
        Graph formulation (:func:`bayesmix.graphs.build_model`); default: the faster one.
    sample_weight : ndarray of shape (N,), optional
    labels : ndarray of shape (N,), optional
        Checked partial labels (-1 = unknown). NaN entries of ``X`` are missing values
        (``missing="model"``, checked by :func:`get_compiled`).
    cache_key : tuple, optional
        What fixes this model's graph (:func:`get_compiled`'s key): with it, the rewritten
        graphs of the log density and the point map are kept on disk between processes
        (:mod:`bayesmix.inference._graph_cache`); None compiles them in every process.
    """

    def __init__(
        self,
        spec: ModelSpec,
        X: np.ndarray,
        feature_names: Sequence[str] | None = None,
        formulation: str | None = None,
        sample_weight: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        cache_key: tuple | None = None,
    ) -> None:
        self.spec = spec
        self.cache_key = cache_key
        self.n_obs, self.n_features = X.shape
        self.covariance = effective_covariance(spec, self.n_features)
        if formulation is None:
            formulation = DEFAULT_FORMULATION.get(self.covariance, "custom")
        self.formulation = formulation
        self.feature_names = feature_labels(X, feature_names, self.n_features)
        self.X = np.array(X, dtype=float)
        self.sample_weight = None if sample_weight is None else np.array(sample_weight, float)
        self.labels = None if labels is None else np.array(labels, dtype=np.int64)
        self.rows = ObservedRows(self.X, self.labels)
        self.priors = resolve_priors(spec, self.X, self.sample_weight)
        with checked_data(self.X):  # a copy of data validated by get_compiled
            self.model = build_model(
                spec,
                self.X,
                feature_names=self.feature_names,
                priors=self.priors,
                formulation=formulation,
                sample_weight=self.sample_weight,
                missing=self.missing,
                labels=self.labels,
            )
        self.n_compiles = 0
        self._nutpie = None
        self._nutpie_py = None
        self._logp_fn = None
        self._point_fn = None
        self._to_unc_fn = None
        self.value_vars = list(self.model.value_vars)
        self._initial_point = ip = self.model.initial_point(0)
        self._shapes = {v.name: np.shape(ip[v.name]) for v in self.value_vars}
        self._sizes = {k: int(np.prod(s)) for k, s in self._shapes.items()}
        self.n_dim = sum(self._sizes.values())

    # -- data ---------------------------------------------------------------------------------

    @property
    def missing(self) -> str:
        """``"model"`` when the data hold missing values (NaN), else ``"error"``."""
        return "model" if self.rows.missing else "error"

    def data_values(self) -> dict[str, np.ndarray]:
        """Current values of every ``pm.Data`` container (data and prior numbers).

        The data as the graph reads them (:class:`~bayesmix.families._base.ObservedRows`:
        ``x_data`` without NaN, the mask and patterns of missing entries, the labels).
        """
        out = dict(self.rows.values)
        if self.sample_weight is not None:
            out["sample_weight"] = self.sample_weight
        out.update({f"prior_{k}": np.asarray(v, float) for k, v in self.priors.items()})
        return {k: v for k, v in out.items() if k in self.model.named_vars}

    def set_data(
        self,
        X: np.ndarray,
        feature_names: Sequence[str] | None = None,
        sample_weight: np.ndarray | None = None,
        labels: np.ndarray | None = None,
    ) -> None:
        """Swap in new data of the same shape (and its data-scaled priors); no recompilation.

        Parameters
        ----------
        X : ndarray of shape (N, D)
            Validated data with the shape this model was built for (NaN where missing, if
            this model was built for missing values).
        feature_names : sequence of str, optional
        sample_weight : ndarray of shape (N,), optional
        labels : ndarray of shape (N,), optional
            Checked partial labels, if this model was built with labels.
        """
        import pymc as pm

        if X.shape != (self.n_obs, self.n_features):
            raise ValueError(f"shape {X.shape} differs from {(self.n_obs, self.n_features)}")
        rows = ObservedRows(X, labels)
        if rows.key != self.rows.key:
            raise ValueError("data with and without missing values or labels are compiled apart")
        self.X = np.array(X, dtype=float)
        self.rows = rows
        self.labels = None if labels is None else np.array(labels, dtype=np.int64)
        if (sample_weight is None) != (self.sample_weight is None):
            raise ValueError("a weighted and an unweighted model are compiled apart")
        self.sample_weight = None if sample_weight is None else np.array(sample_weight, float)
        self.priors = resolve_priors(self.spec, self.X, self.sample_weight)
        if feature_names is not None or hasattr(X, "columns"):
            self.feature_names = feature_labels(X, feature_names, self.n_features)
        pm.set_data(self.data_values(), model=self.model)

    # -- flat unconstrained vectors -------------------------------------------------------------

    def ravel(self, point: Mapping[str, np.ndarray]) -> np.ndarray:
        """Flat unconstrained vector from a dict keyed by value-variable names."""
        return np.concatenate([np.ravel(point[v.name]) for v in self.value_vars])

    def unravel(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Inverse of :meth:`ravel`."""
        out, i = {}, 0
        for v in self.value_vars:
            n = self._sizes[v.name]
            out[v.name] = np.reshape(flat[i : i + n], self._shapes[v.name])
            i += n
        return out

    def to_unconstrained(self, initvals: Mapping[str, Any]) -> np.ndarray:
        """Flat unconstrained vector from constrained values of the free variables.

        Parameters
        ----------
        initvals : mapping
            Keyed by free random-variable names (:func:`bayesmix.graphs.point_to_initvals`).

        Returns
        -------
        ndarray of shape (n_dim,)
        """
        if self._to_unc_fn is None:
            import pytensor

            model = self.model
            ins, outs = [], []
            for rv in model.free_RVs:
                v = rv.type()
                ins.append(v)
                tr = model.rvs_to_transforms.get(rv)
                outs.append(v if tr is None else tr.forward(v, *rv.owner.inputs))
            # evaluated a few times per fit: Python linker, no Numba compilation
            self._to_unc_fn = pytensor.function(
                ins, outs, on_unused_input="ignore", mode="FAST_COMPILE"
            )
            self.n_compiles += 1
        vals = self._to_unc_fn(
            *[np.asarray(initvals[rv.name], dtype=rv.dtype) for rv in self.model.free_RVs]
        )
        by_value = {
            self.model.rvs_to_values[rv].name: val
            for rv, val in zip(self.model.free_RVs, vals, strict=True)
        }
        return self.ravel(by_value)

    # -- compiled functions --------------------------------------------------------------------

    def _shared_variables(self) -> dict[str, Any]:
        """The model's shared variables by name: ``pm.Data`` containers and dim lengths."""
        from pytensor.compile.sharedvalue import SharedVariable

        out = {n: v for n, v in self.model.dim_lengths.items() if isinstance(v, SharedVariable)}
        for v in self.model.data_vars:
            if v.name in out:  # pragma: no cover - bayesmix names data apart from dims
                raise RuntimeError(f"a pm.Data and a dim are both named {v.name!r}")
            out[v.name] = v
        return out

    def _compile_flat(self, role: str, outputs: Callable[[], list], **kwargs):
        """Compile ``outputs()`` as a function of the flat unconstrained vector.

        The model's data are inputs fed at each call (:class:`~bayesmix.inference.
        _graph_cache.CompiledGraph`); with a ``cache_key`` the rewritten graph is kept on disk
        between processes under ``(cache_key, role, value-variable layout)``.
        """
        from pymc.pytensorf import compile as pm_compile
        from pymc.pytensorf import join_nonshared_inputs

        from bayesmix.inference._graph_cache import compile_graph

        def build():
            outs, inp = join_nonshared_inputs(
                point=self._initial_point,
                outputs=outputs(),
                inputs=self.value_vars,
                make_inputs_shared=False,
            )
            return [inp], outs

        def fresh(inputs, outs):
            return pm_compile(inputs, outs, **kwargs)

        layout = tuple((v.name, self._shapes[v.name]) for v in self.value_vars)
        key = None if self.cache_key is None else (self.cache_key, role, layout)
        fn = compile_graph(key, build, self._shared_variables(), fresh, _no_fastmath)
        self.n_compiles += 1
        return fn

    def _logp_outputs(self):
        """The compiled log density of a flat vector: ``(lp, grad, lp_jac, grad_jac)``.

        ``lp``/``grad`` are without the Jacobian terms of the transforms (what MAP maximises),
        ``lp_jac``/``grad_jac`` with them (what NUTS samples). Both come from one Numba function:
        PyTensor merges the shared likelihood subgraph, so the pair costs one evaluation.
        Returns a :class:`~bayesmix.inference._graph_cache.CompiledGraph`, called with the
        flat vector.
        """
        if self._logp_fn is None:

            def outputs():
                import pytensor.tensor as pt

                out = []
                for jacobian in (False, True):
                    logp = self.model.logp(jacobian=jacobian)
                    grads = pt.grad(logp, self.value_vars)
                    out += [logp, pt.join(0, *[g.ravel() for g in grads])]
                return out

            self._logp_fn = self._compile_flat("logp", outputs)
        return self._logp_fn

    def logp_grad(self, flat: np.ndarray, jacobian: bool = False) -> tuple[float, np.ndarray]:
        """Log posterior density and its gradient at an unconstrained point.

        Parameters
        ----------
        flat : ndarray of shape (n_dim,)
            Unconstrained values.
        jacobian : bool
            False (default): without the Jacobian terms of the transforms, the density that
            MAP maximises; True: with them, the density NUTS samples.

        Returns
        -------
        logp : float
        grad : ndarray of shape (n_dim,)
        """
        out = self._logp_outputs()(np.asarray(flat, dtype=float))
        lp, g = (out[2], out[3]) if jacobian else (out[0], out[1])
        return float(lp), np.asarray(g)

    def _expand(self):
        """Compiled map from a flat unconstrained vector to the result variables."""
        if self._point_fn is None:
            model = self.model
            wanted = [
                *result_variables(self.spec.family, self.spec.covariance, self.n_features),
                *hyper_variables(self.spec, self.n_features),  # e0, dp_alpha, variance_beta
            ]
            self._point_names = [n for n in wanted if n in model.named_vars]
            self._point_fn = self._compile_flat(
                "point:" + ",".join(self._point_names),
                lambda: model.replace_rvs_by_values([model[n] for n in self._point_names]),
                on_unused_input="ignore",
            )
        return self._point_fn

    def point(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Result variables (:func:`bayesmix.families.result_variables`) at a point.

        Parameters
        ----------
        flat : ndarray of shape (n_dim,)
            Unconstrained values.

        Returns
        -------
        dict of str to ndarray
        """
        vals = self._expand()(np.asarray(flat, dtype=float))
        return dict(zip(self._point_names, (np.asarray(v) for v in vals), strict=True))

    def nutpie_backend(self, evaluations: int) -> str:
        """The nutpie route for a run of about ``evaluations`` gradient evaluations in all.

        ``"numba"`` (``nutpie.compile_pymc_model``) builds C callbacks that run every chain
        without the GIL, but compiling them takes 15-30 s in every new process (Numba cannot
        cache them). ``"pyfunc"`` calls this object's compiled log density from Python: no
        extra compilation (the function is in PyTensor's disk cache), some microseconds more
        per call, and the chains take turns on the GIL. It wins unless the gradient is costly
        and the run long: the choice is ``"pyfunc"`` when ``evaluations`` times the
        likelihood's work per evaluation (N K D^2 for full covariances, N K D otherwise) is
        below 1e10, about 3 s of gradient time on one core; Old Faithful with 4 x 2000
        iterations is 3e8. Measured break-even: about 1e11 (5-D K=3, N=1e4, 4 x 2000: 76 s
        either way, compilation included; ``benchmarks/README.md``).

        Parameters
        ----------
        evaluations : int
            Expected number of log-density evaluations of the whole run.

        Returns
        -------
        {"pyfunc", "numba"}
        """
        d = self.n_features
        per_eval = (
            self.n_obs * self.spec.n_components * (d * d if self.covariance == "full" else d)
        )
        return "pyfunc" if evaluations * per_eval < _PYFUNC_MAX_WORK else "numba"

    @staticmethod
    def nutpie_cores(backend: str, chains: int) -> int:
        """Threads for nutpie's chains: one for ``"pyfunc"``, else ``min(chains, 2)``.

        ``"pyfunc"`` chains call Python and take turns on the GIL: on one thread they run
        without hand-overs (Old Faithful, 4 x 2000 iterations: 2.6 s against 3.7 s on two
        threads). The draws depend only on the seed and the chain, not on the threads.
        """
        return 1 if backend == "pyfunc" else min(chains, 2)

    def nutpie_model(
        self,
        init_flat: np.ndarray | None = None,
        jitter: float = 0.1,
        backend: str = "numba",
    ):
        """A nutpie model (compiled once per backend) with the current data.

        Parameters
        ----------
        init_flat : ndarray of shape (n_dim,), optional
            Unconstrained start; each chain adds U(-jitter, jitter) noise drawn from its own
            seed. None keeps nutpie's default start (``"numba"``) or starts at 0 (``"pyfunc"``).
        jitter : float
        backend : {"numba", "pyfunc"}
            See :meth:`nutpie_backend`.

        Returns
        -------
        nutpie.sample.CompiledModel
        """
        if backend == "pyfunc":
            compiled = self._nutpie_pyfunc()
            field = "_make_initial_points"
            if init_flat is None:
                init_flat = np.zeros(self.n_dim)
        elif backend == "numba":
            compiled = self._nutpie_numba().with_data(**self.data_values())
            field = "initial_point_func"
        else:
            raise ValueError(f"unknown nutpie backend {backend!r}: expected 'numba' or 'pyfunc'")
        if init_flat is not None:
            base = np.asarray(init_flat, dtype=float).copy()

            def initial_point(seed, _base=base, _jitter=jitter):
                rng = np.random.default_rng(seed)
                return _base + rng.uniform(-_jitter, _jitter, size=_base.shape)

            compiled = dataclasses.replace(compiled, **{field: initial_point})
        return compiled

    def _nutpie_numba(self):
        if self._nutpie is None:
            import nutpie

            with _no_fastmath():
                self._nutpie = nutpie.compile_pymc_model(self.model)
            self.n_compiles += 1
            names = list(self._nutpie.shape_info[0])[: len(self.value_vars)]
            expected = [v.name for v in self.value_vars]
            if names != expected:  # pragma: no cover - nutpie's layout changed
                raise RuntimeError(f"nutpie variable order {names} differs from {expected}")
        return self._nutpie

    def _nutpie_pyfunc(self):
        if self._nutpie_py is None:
            from nutpie.compiled_pyfunc import from_pyfunc

            logp_fn = self._logp_outputs()
            expand_fn = self._expand()
            names = self._point_names
            model = self.model
            flat0 = np.zeros(self.n_dim)
            shapes = [np.shape(v) for v in expand_fn(flat0)]

            # nutpie calls these from one thread per chain. A PyTensor Function keeps its
            # inputs and outputs in storage of its own, so it is not safe to share between
            # threads; the Numba function inside it is (CompiledGraph.raw, with the data and
            # prior numbers read once per chain: they cannot change during a run).
            def make_logp_fn():
                call = logp_fn.raw()

                def logp(x, **_shared):
                    out = call(x)
                    return float(out[2]), np.asarray(out[3])

                return logp

            def make_expand_fn(_seed1, _seed2, _chain):
                call = expand_fn.raw()

                def expand(x, **_shared):
                    return {
                        n: np.asarray(v, dtype=float) for n, v in zip(names, call(x), strict=True)
                    }

                return expand

            import pandas as pd

            coords = {}
            for name, vals in model.coords.items():
                if vals is None:  # pragma: no cover - every bayesmix dim has values
                    vals = range(int(model.dim_lengths[name].eval()))
                coords[name] = pd.Index(list(vals))
            # scalars (e0, dp_alpha) have no dims
            dims = {n: tuple(model.named_vars_to_dims.get(n, ())) for n in names}
            self._nutpie_py = from_pyfunc(
                self.n_dim,
                make_logp_fn,
                make_expand_fn,
                [np.dtype(float)] * len(names),
                shapes,
                names,
                coords=coords,
                dims=dims,
                make_initial_point_fn=lambda seed: flat0.copy(),
            )
        return self._nutpie_py


def get_compiled(
    spec: ModelSpec,
    X: Any,
    *,
    feature_names: Sequence[str] | None = None,
    formulation: str | None = None,
    sample_weight: Any = None,
    missing: str = "error",
    labels: Any = None,
) -> CompiledMixture:
    """The process-wide :class:`CompiledMixture` for (spec, X.shape, dtype), with X swapped in.

    Weighted and unweighted models are compiled apart (the weights are ``pm.Data`` too, so
    new weights of the same length compile nothing); so are data whose family's
    ``graph_key`` differs (e.g. categorical items with other numbers of levels), data with
    and without missing values, and with and without labels (the mask, the missingness
    patterns and the labels are ``pm.Data``: other missing entries or labels compile
    nothing).

    Parameters
    ----------
    spec : ModelSpec
    X : array-like of shape (N, D)
        Data (validated here; a DataFrame gives the feature labels).
    feature_names : sequence of str, optional
    formulation : {"custom", "mixture"}, optional
    sample_weight : array-like of shape (N,), optional
        Frequency weights of the rows (:func:`bayesmix.graphs.build_model`).
    missing : {"error", "model"}
        ``"model"``: NaN entries are missing values (:func:`bayesmix.graphs.build_model`).
    labels : array-like of shape (N,), optional
        Partial labels, -1 = unknown (:func:`bayesmix.graphs.build_model`).

    Returns
    -------
    CompiledMixture
    """
    Xc = validate_data(spec, X, missing=missing)
    known = check_labels(labels, Xc.shape[0], spec.n_components)
    weights = check_sample_weight(sample_weight, Xc.shape[0])
    names = feature_labels(X, feature_names, Xc.shape[1])
    extra = get_family(spec.family).graph_key(Xc)
    # the prior on K is not part of a model with one K: specs that differ only there share it
    graph_spec = dataclasses.replace(
        spec,
        priors=dataclasses.replace(
            spec.priors, k_prior=PriorSpec.k_prior, k_prior_mean=PriorSpec.k_prior_mean
        ),
    )
    rows = ObservedRows(Xc, known).key  # (missing values, labels): the graph differs
    key = (graph_spec, Xc.shape, Xc.dtype.str, formulation, weights is not None, extra, rows)
    cm = _CACHE.get(key)
    if cm is None:
        cm = CompiledMixture(
            spec, Xc, names, formulation, sample_weight=weights, labels=known, cache_key=key
        )
        _CACHE[key] = cm
    else:
        cm.set_data(Xc, sample_weight=weights, labels=known)
        cm.feature_names = names
    return cm


def clear_cache() -> None:
    """Forget every compiled model of this process."""
    _CACHE.clear()
