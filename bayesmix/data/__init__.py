"""Bundled data sets, a CSV loader and simulators of mixture data with known truth.

Loaders: :func:`load_old_faithful`, :func:`load_low_dim_gauss_mix`, :func:`load_digits`,
:func:`load_death_notices`, :func:`load_galaxies`, :func:`load_acidity`, :func:`load_iris`,
:func:`load_table` (CSV dialect
detection, id and text columns, ``attrs["notes"]``).
Simulators (each returns ``(X, z, truth)``): :func:`make_gaussian_mixture`,
:func:`make_bernoulli_mixture`, :func:`make_heights`, :func:`make_returns`;
:func:`remove_at_random` (missing values completely at random, for ``missing="model"``).
Provenance of the bundled files: ``bayesmix/data/README.md``.
"""

from bayesmix.data._loaders import (
    BUILTIN_TABLES,
    SEPARATOR_NAMES,
    load_acidity,
    load_death_notices,
    load_digits,
    load_galaxies,
    load_iris,
    load_low_dim_gauss_mix,
    load_old_faithful,
    load_table,
)
from bayesmix.data._simulate import (
    make_bernoulli_mixture,
    make_gaussian_mixture,
    make_heights,
    make_returns,
    remove_at_random,
)

__all__ = [
    "BUILTIN_TABLES",
    "SEPARATOR_NAMES",
    "load_acidity",
    "load_death_notices",
    "load_digits",
    "load_galaxies",
    "load_iris",
    "load_low_dim_gauss_mix",
    "load_old_faithful",
    "load_table",
    "make_bernoulli_mixture",
    "make_gaussian_mixture",
    "make_heights",
    "make_returns",
    "remove_at_random",
]
