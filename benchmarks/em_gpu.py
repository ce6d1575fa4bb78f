"""Time one EM iteration of bayesmix's array-namespace kernels on JAX (GPU or CPU).

Two measurements per cell (N rows, D=10, K=10, full covariances):

* ``jit step``: the whole iteration (E-step, sufficient statistics, maximum-likelihood
  M-step with batched Cholesky) as one ``jax.jit`` function, :func:`bayesmix.em._xp.em_step`;
  the parameters stay on the device. Median over repeats of ``block_until_ready`` wall time.
* ``estimator``: ``GaussianMixtureEM(...).fit(jax_array)`` per iteration: jitted statistics
  on the device, M-step (ML or MAP) on the host in NumPy; includes the small per-iteration
  transfers and Python overhead.

Needs only numpy, scipy, scikit-learn, pandas and jax (no PyMC/ArviZ)::

    PYTHONPATH=/path/to/repo python benchmarks/em_gpu.py            # N = 1e6, 1e7
    PYTHONPATH=/path/to/repo python benchmarks/em_gpu.py --quick    # N = 1e4, 1e5 (CPU check)

The data are drawn on the device (no host-to-device copy of N rows). ``--chunk-size`` bounds
the (rows, K D) temporaries (the chunks are unrolled inside the jitted function); 0 = one
chunk.
"""

from __future__ import annotations

import argparse
import time
import warnings

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)  # float64 cells; float32 arrays stay float32

import jax.numpy as jnp  # noqa: E402

from bayesmix.em import GaussianMixtureEM, _xp  # noqa: E402


def make_data(n, d, k, dtype, seed=0):
    """Rows of a random K-component mixture, drawn on the default device."""
    key_c, key_z, key_x = jax.random.split(jax.random.PRNGKey(seed), 3)
    centres = jax.random.normal(key_c, (k, d), dtype=dtype) * (3.0 / np.sqrt(d))
    z = jax.random.randint(key_z, (n,), 0, k)
    return centres[z] + jax.random.normal(key_x, (n, d), dtype=dtype)


def initial_parameters(X, k):
    """Equal weights, K data rows as means, diagonal precisions from the data variance."""
    d = X.shape[1]
    idx = np.random.default_rng(0).choice(X.shape[0], size=k, replace=False)
    means = np.asarray(X[idx], dtype=np.float64)
    var = np.asarray(X.var(axis=0), dtype=np.float64)
    prec = np.repeat(np.diag(1.0 / var)[None], k, axis=0)
    pc = np.repeat(np.diag(1.0 / np.sqrt(var))[None], k, axis=0)
    return np.full(k, 1.0 / k), means, prec, pc.reshape(k, d, d)


def time_jit_step(X, k, repeats, chunk):
    weights, means, _, pc = initial_parameters(X, k)
    dtype = X.dtype
    shift = X.mean(axis=0)
    params = tuple(jnp.asarray(a, dtype=dtype) for a in (weights, means, pc))

    @jax.jit
    def step(X, shift, w, m, pc):
        out = _xp.em_step(jnp, X, shift, w, m, pc, kind="full", reg_covar=1e-6, chunk_size=chunk)
        return out[0], out[1], out[2], out[4]

    start = time.perf_counter()
    out = step(X, shift, *params)
    jax.block_until_ready(out)
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = step(X, shift, *out[1:])
        jax.block_until_ready(out)
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times)), compile_s, float(out[0])


def time_estimator(X, k, n_iter, chunk):
    weights, means, prec, _ = initial_parameters(X, k)
    kw = {
        "covariance_type": "full",
        "tol": 1e-300,
        "weights_init": weights,
        "means_init": means,
        "precisions_init": prec,
        "dtype": X.dtype,
        "chunk_size": chunk,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        GaussianMixtureEM(k, max_iter=1, **kw).fit(X)  # compile
        start = time.perf_counter()
        model = GaussianMixtureEM(k, max_iter=n_iter, **kw).fit(X)
        elapsed = time.perf_counter() - start
    return 1e3 * elapsed / model.n_iter_


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 1e4, 1e5 (a CPU check)")
    parser.add_argument("--n", type=float, action="append", help="rows (repeatable)")
    parser.add_argument("--d", type=int, default=10)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--chunk-size", type=int, default=2_000_000, help="0: one chunk")
    parser.add_argument("--no-estimator", action="store_true")
    args = parser.parse_args(argv)
    sizes = args.n or ([1e4, 1e5] if args.quick else [1e6, 1e7])
    chunk = args.chunk_size or None
    device = jax.devices()[0]
    print(
        f"jax {jax.__version__}; device: {device.platform} {device.device_kind} "
        f"({len(jax.devices())} visible); D={args.d}, K={args.k}, full; chunk rows: {chunk}"
    )
    header = (
        f"{'N':>10} {'dtype':>8} | {'jit step ms/it':>14} {'compile s':>9} | "
        f"{'estimator ms/it':>15} | mean loglik"
    )
    print(header)
    print("-" * len(header))
    for n in sizes:
        for dtype in (jnp.float32, jnp.float64):
            X = make_data(int(n), args.d, args.k, dtype)
            jax.block_until_ready(X)
            ms, compile_s, loglik = time_jit_step(X, args.k, args.repeats, chunk)
            est = "-" if args.no_estimator else f"{time_estimator(X, args.k, 5, chunk):15.2f}"
            print(
                f"{int(n):>10} {np.dtype(dtype).name:>8} | {ms:14.2f} {compile_s:9.2f} | "
                f"{est:>15} | {loglik:.6f}",
                flush=True,
            )
            del X


if __name__ == "__main__":
    main()
