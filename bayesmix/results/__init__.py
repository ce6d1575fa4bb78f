"""Results: label alignment, comparison tables, diagnostics, choice of K, persistence.

Every function takes and returns ``xarray.DataTree`` results (layout in
``docs/architecture.md``) or pandas DataFrames. Importing this package does not import PyMC;
:func:`select_k` with ``bayesian=True`` imports it when called.
"""

from bayesmix.results.compare import EstimatesTable, compare_estimates
from bayesmix.results.diagnostics import Diagnostics, diagnose
from bayesmix.results.evidence import EvidenceResult, log_evidence, posterior_k
from bayesmix.results.io import load, save
from bayesmix.results.labels import label_switching_report, relabel
from bayesmix.results.partition import (
    coclustering,
    draw_allocations,
    expected_loss,
    kplus_posterior,
    n_filled,
    point_partition,
    summarize_partition,
)
from bayesmix.results.select import criterion_table, loo, recommend, refit_em, select_k
from bayesmix.results.sparse import filled_components

__all__ = [
    "Diagnostics",
    "EstimatesTable",
    "EvidenceResult",
    "coclustering",
    "compare_estimates",
    "criterion_table",
    "diagnose",
    "draw_allocations",
    "expected_loss",
    "filled_components",
    "kplus_posterior",
    "label_switching_report",
    "load",
    "log_evidence",
    "loo",
    "n_filled",
    "point_partition",
    "posterior_k",
    "summarize_partition",
    "recommend",
    "refit_em",
    "relabel",
    "save",
    "select_k",
]
