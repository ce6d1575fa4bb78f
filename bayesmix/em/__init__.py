"""Hand-written NumPy EM: Gaussian, Student-t, Bernoulli, Poisson, categorical mixtures, K-means.

``MixtureClassifier`` fits one mixture per class and classifies by Bayes' rule.
``GaussianMixtureEM`` has R mclust's 14 covariance models (``covariance_type="VEV"`` etc.);
``bic_table`` is mclust's BIC table over models and K, ``hc``/``hclass`` its hierarchical
clustering (the start ``init_params="hc"``); ``bootstrap_lrt`` and ``bootstrap_parameters``
its bootstrap likelihood-ratio test of K and bootstrap standard errors.
Uses NumPy and SciPy only (plus scikit-learn's estimator base classes and validation
helpers); never imports PyMC or ArviZ. ``GaussianMixtureEM.fit`` also takes Dask arrays
(out-of-core / distributed EM) and JAX arrays (statistics on the array's device); dask and
jax are imported only when such an array is given.
"""

from bayesmix.em._base import (
    BaseMixtureEM,
    CollapsedComponentWarning,
    DegenerateComponentWarning,
    check_sample_weight,
    notify_start,
    on_each_start,
)
from bayesmix.em.bernoulli import BernoulliMixtureEM
from bayesmix.em.bootstrap import (
    BootstrapLRT,
    BootstrapParameters,
    bootstrap_lrt,
    bootstrap_parameters,
)
from bayesmix.em.categorical import CategoricalMixtureEM
from bayesmix.em.classifier import MixtureClassifier
from bayesmix.em.gaussian import GaussianMixtureEM
from bayesmix.em.hc import hc, hclass
from bayesmix.em.kmeans import KMeans, kmeans_plusplus
from bayesmix.em.poisson import PoissonMixtureEM
from bayesmix.em.selection import BICTable, bic_table
from bayesmix.em.student_t import StudentTMixtureEM

__all__ = [
    "BICTable",
    "BaseMixtureEM",
    "BernoulliMixtureEM",
    "BootstrapLRT",
    "BootstrapParameters",
    "CollapsedComponentWarning",
    "CategoricalMixtureEM",
    "DegenerateComponentWarning",
    "GaussianMixtureEM",
    "KMeans",
    "MixtureClassifier",
    "PoissonMixtureEM",
    "StudentTMixtureEM",
    "bic_table",
    "bootstrap_lrt",
    "bootstrap_parameters",
    "check_sample_weight",
    "hc",
    "hclass",
    "kmeans_plusplus",
    "notify_start",
    "on_each_start",
]
