"""bayesmix: Bayesian mixture models, EM and diagnostics side by side.

The sub-modules are loaded on first use, so ``import bayesmix`` stays fast and does not import
PyMC until a PyMC-based part (``graphs``, ``inference``, ``results``, ``plotting``) is touched::

    import bayesmix as bm
    X = bm.data.load_old_faithful()
    em = bm.em.GaussianMixtureEM(n_components=2).fit(X)
"""

from importlib import import_module

__version__ = "0.1.0"

_SUBMODULES = ("config", "data", "em", "graphs", "inference", "results", "plotting", "report")

__all__ = ["__version__", *_SUBMODULES]


def __getattr__(name: str):
    if name in _SUBMODULES:
        module = import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'bayesmix' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
