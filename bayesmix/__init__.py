"""bayesmix: Bayesian mixture models, EM and diagnostics side by side."""

__version__ = "0.1.0"
