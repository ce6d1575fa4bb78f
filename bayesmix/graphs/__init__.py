"""PyMC model builders: a :class:`~bayesmix.config.ModelSpec` plus data -> ``pm.Model``.

These functions build graphs and never sample; :mod:`bayesmix.inference` fits them.
"""

from bayesmix.graphs._mixture import (
    FORMULATIONS,
    MISSING,
    build_model,
    check_labels,
    check_missing,
    default_initvals,
    effective_covariance,
    feature_labels,
    free_var_names,
    hyper_variables,
    point_to_initvals,
    validate_data,
)

__all__ = [
    "FORMULATIONS",
    "MISSING",
    "build_model",
    "check_labels",
    "check_missing",
    "default_initvals",
    "effective_covariance",
    "feature_labels",
    "free_var_names",
    "hyper_variables",
    "point_to_initvals",
    "validate_data",
]
