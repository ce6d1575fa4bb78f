"""Fitting: EM, MAP, NUTS and ADVI of one compiled mixture model, into one ``xarray.DataTree``.

See ``docs/architecture.md`` for the groups and names of the result.
"""

from bayesmix.inference._classifier import BayesianMixtureClassifier
from bayesmix.inference._compiled import CompiledMixture, clear_cache, get_compiled
from bayesmix.inference._fit import (
    TruncationWarning,
    em_prior,
    fit_advi,
    fit_em,
    fit_map,
    log_likelihood,
    sample_nuts,
)
from bayesmix.inference._predict import (
    as_images,
    generate,
    impute,
    membership,
    sample_posterior_predictive,
    sample_prior_predictive,
)
from bayesmix.inference._run import run
from bayesmix.inference._tree import DivergenceWarning, StartsDisagreeWarning

__all__ = [
    "BayesianMixtureClassifier",
    "CompiledMixture",
    "DivergenceWarning",
    "StartsDisagreeWarning",
    "TruncationWarning",
    "as_images",
    "clear_cache",
    "em_prior",
    "fit_advi",
    "fit_em",
    "fit_map",
    "generate",
    "get_compiled",
    "impute",
    "log_likelihood",
    "membership",
    "run",
    "sample_nuts",
    "sample_posterior_predictive",
    "sample_prior_predictive",
]
