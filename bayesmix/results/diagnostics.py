"""Sampler and model diagnostics of a mixture fit, in plain language."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from bayesmix._validation import ParameterError
from bayesmix.results.compare import compare_estimates
from bayesmix.results.io import _decode_value
from bayesmix.results.labels import _group, _require_posterior, relabel

__all__ = ["Diagnostics", "diagnose", "RHAT_MAX", "ESS_MIN", "PARETO_K_MAX"]

RHAT_MAX = 1.01
ESS_MIN = 400
PARETO_K_MAX = 0.7
# a point-estimate component explaining fewer observations than this is degenerate
MIN_COMPONENT_POINTS = 2.0
# ... and so is one whose sigma is below this fraction of the data's sd (per feature)
MIN_SIGMA_FRACTION = 1e-3


@dataclass
class Diagnostics:
    """What :func:`diagnose` found.

    Attributes
    ----------
    n_divergences : int
        Divergent transitions over all chains (0 when ``sample_stats`` has no ``diverging``).
    max_rhat, min_ess_bulk, min_ess_tail : float
        Worst values over the scalar parameters (NaN entries, such as constants, ignored).
    warnings : list of str
        One sentence per problem; empty when nothing was found.
    table : pandas.DataFrame
        One row per scalar parameter: ``parameter, component, feature, [feature_bis,] r_hat,
        ess_bulk, ess_tail, ok``.
    occupied_components : dict
        Chain -> number of components whose mean weight in that chain exceeds ``1 / (10 K)``.
    n_switched_draws : int or None
        Draws that a pivot relabelling would permute (None when the tree was relabelled
        already).
    n_high_pareto_k : int or None
        Observations with Pareto k above 0.7 in PSIS-LOO (None without ``log_likelihood``).
    n_draws : int
        Posterior draws over all chains (0 for a result without a posterior).
    notes : list of str
        How the EM, MAP and ADVI fits went (convergence, restarts, agreement of MAP starts,
        the final ADVI loss).
    n_chains : int
        Posterior chains (0 for a result without a posterior); R-hat needs two or more.
    filled : xarray.DataTree or None
        A sparse or DP mixture's filled components, as checked
        (:func:`bayesmix.results.filled_components`; None for other results or when they
        could not be identified); ``plot_plan(result, components=...)`` reuses them.
    """

    n_divergences: int
    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    warnings: list[str]
    table: pd.DataFrame
    occupied_components: dict[int, int] = field(default_factory=dict)
    n_switched_draws: int | None = None
    n_high_pareto_k: int | None = None
    n_draws: int = 0
    notes: list[str] = field(default_factory=list)
    n_chains: int = 0
    filled: xr.DataTree | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True when no check raised a warning."""
        return not self.warnings

    def __str__(self) -> str:
        lines = list(self.notes)
        if self.n_draws:
            if self.n_chains >= 2:
                rhat = f"largest R-hat {self.max_rhat:.3f} (want <= {RHAT_MAX})"
            else:
                rhat = f"R-hat not computed (it needs 2 or more chains, got {self.n_chains})"
            lines += [
                f"{self.n_draws} draws; {self.n_divergences} divergent transitions; "
                f"{rhat}; smallest ESS "
                f"{self.min_ess_bulk:.0f} bulk / {self.min_ess_tail:.0f} tail "
                f"(want >= {ESS_MIN}).",
                "Occupied components per chain: "
                + ", ".join(f"chain {c}: {n}" for c, n in self.occupied_components.items())
                + ".",
            ]
        elif any(n.startswith("ADVI") for n in self.notes):
            lines.append(
                "No NUTS posterior draws: no R-hat or ESS; the ADVI draws are an approximation "
                "of the posterior; sample it (method nuts) to check them."
            )
        else:
            lines.append(
                "No posterior draws (NUTS not run): no R-hat, ESS or uncertainty; sample the "
                "posterior (method nuts) to get them."
            )
        if self.n_high_pareto_k is not None:
            lines.append(f"PSIS-LOO: {self.n_high_pareto_k} observations with Pareto k > 0.7.")
        if self.warnings:
            lines.append("Problems found:")
            lines += [f"  - {w}" for w in self.warnings]
        else:
            lines.append("No problems found.")
        return "\n".join(lines)


def _occupied(post: xr.Dataset, threshold: float | None = None) -> dict[int, int]:
    """Components per chain with mean weight above ``threshold`` (default ``1 / (10 K)``)."""
    k = post.sizes["component"]
    mean_w = post["w"].mean("draw").transpose("chain", "component").values
    counts = (mean_w > (1.0 / (10 * k) if threshold is None else threshold)).sum(axis=1)
    return {int(c): int(n) for c, n in zip(post["chain"].values, counts, strict=True)}


def _fmt_vector(values: np.ndarray) -> str:
    values = np.asarray(values, dtype=float).ravel()
    if values.size == 1:
        return f"{values[0]:.4g}"
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def _data_sd(result: xr.DataTree) -> tuple[float | None, np.ndarray | None]:
    """Number of observations and the sd of each feature of ``observed_data`` (or None).

    With frequency weights (``observed_data["sample_weight"]``) the number is their sum and
    the sd that of the repeated rows.
    """
    obs = _group(result, "observed_data")
    if obs is None or "x" not in obs or "obs_id" not in obs["x"].dims:
        return None, None
    x = obs["x"]
    weights = None
    if "sample_weight" in obs and obs["sample_weight"].sizes.get("obs_id") == x.sizes["obs_id"]:
        weights = np.asarray(obs["sample_weight"].values, dtype=float)
    n = float(weights.sum()) if weights is not None else int(x.sizes["obs_id"])
    if "feature" not in x.dims or n < 2:
        return n, None
    values = np.asarray(x.astype(float).transpose("obs_id", "feature").values)
    if weights is None:
        return n, values.std(axis=0, ddof=1)
    mean = weights @ values / n
    return n, np.sqrt(weights @ (values - mean) ** 2 / (n - 1.0))


def _point_sigma(ds: xr.Dataset) -> np.ndarray | None:
    """Standard deviations (K, D) of a point estimate: ``sigma``, else sqrt of diag(cov)."""
    if "sigma" in ds and "component" in ds["sigma"].dims:
        sig = ds["sigma"]
        if "feature" in sig.dims:
            sig = sig.transpose("component", "feature")
            return np.asarray(sig.values, dtype=float)
        return np.asarray(sig.transpose("component").values, dtype=float)[:, None]
    if "cov" in ds and {"component", "feature", "feature_bis"} <= set(ds["cov"].dims):
        cov = np.asarray(ds["cov"].transpose("component", "feature", "feature_bis").values)
        return np.sqrt(np.clip(np.diagonal(cov, axis1=1, axis2=2), 0.0, None))
    return None


def _degenerate_components(result: xr.DataTree, group: str) -> list[str]:
    """Components of the ``em``/``map`` estimate that sit on one or two points.

    A component is degenerate when its weight times N is below ``MIN_COMPONENT_POINTS``
    observations, or when its sigma of some feature is below ``MIN_SIGMA_FRACTION`` of that
    feature's sd in the data (the likelihood is unbounded as a component collapses onto a
    point, and EM's ``reg_covar`` is then all that is left of its variance).
    """
    ds = _group(result, group)
    if ds is None or "w" not in ds or ds["w"].dims != ("component",):
        return []
    w = np.asarray(ds["w"].values, dtype=float)
    n, data_sd = _data_sd(result)
    sigma = _point_sigma(ds)
    features = [str(f) for f in ds["feature"].values] if "feature" in ds.coords else None
    mu = None
    if "mu" in ds and ds["mu"].dims[:1] == ("component",):
        mu = np.asarray(ds["mu"].values, dtype=float).reshape(len(w), -1)
    label = group.upper()
    out = []
    for k in range(len(w)):
        parts = []
        if n is not None and w[k] * n < MIN_COMPONENT_POINTS:
            parts.append(f"holds about {w[k] * n:.2g} of {n:g} observations (w = {w[k]:.2g})")
        if sigma is not None and data_sd is not None and sigma.shape[1] == data_sd.shape[0]:
            tiny = np.flatnonzero((data_sd > 0) & (sigma[k] < MIN_SIGMA_FRACTION * data_sd))
            for d in tiny:
                name = features[d] if features and d < len(features) else str(d)
                parts.append(
                    f"has sigma {sigma[k, d]:.2g} for {name}, where the data's sd is "
                    f"{data_sd[d]:.3g}"
                )
        if parts:
            where = f" at mu = {_fmt_vector(mu[k])}" if mu is not None else ""
            out.append(
                f"{label} component {k} is degenerate: it {' and '.join(parts)}{where}, so it "
                "describes one or two points (an outlier or repeated values), not a group; "
                "use fewer components or remove those rows (compare K with select_k)"
            )
    return out


def _point_checks(result: xr.DataTree) -> tuple[list[str], list[str]]:
    """Notes on the EM and MAP groups, and warnings for what went wrong there."""
    notes: list[str] = []
    problems: list[str] = []
    if "em" in result.children:
        a = result["em"].attrs
        converged = bool(a.get("converged", True))
        notes.append(
            f"EM ({str(a.get('method', 'ml')).upper()}) "
            f"{'converged' if converged else 'did not converge'} after "
            f"{a.get('n_iter', '?')} iterations (best of {a.get('n_init', '?')} starts); "
            f"objective {float(a.get('lower_bound', np.nan)):.6g} per observation."
        )
        if not converged:
            problems.append(
                "EM reached max_iter before converging: its estimates may be off; raise "
                "max_iter or loosen tol"
            )
        problems += _point_degenerate(result, "em", notes)
    if "map" in result.children:
        a = result["map"].attrs
        agree = a.get("starts_agree")
        notes.append(
            f"MAP: log posterior {float(a.get('logp', np.nan)):.6g} from "
            f"{a.get('n_starts', '?')} starts."
        )
        if agree is not None and not bool(agree):
            problems.append(
                "the MAP starts reached different optima: the posterior has several modes; "
                "look at the posterior draws, or compare K with select_k"
            )
        problems += _point_degenerate(result, "map", notes)
    return notes, problems


def _point_degenerate(result: xr.DataTree, group: str, notes: list[str]) -> list[str]:
    """Degenerate components of a point estimate: problems, or one note for a sparse/DP mixture.

    A sparse or DP mixture overfits K on purpose, and its EM/MAP fit is only the start of
    the sampler.
    """
    from bayesmix.results.sparse import has_empty_components

    found = _degenerate_components(result, group)
    if not found or not has_empty_components(result):
        return found
    notes.append(
        f"{group.upper()} has {len(found)} degenerate component(s) on one or two points: "
        "expected of a sparse or Dirichlet-process mixture, which has more components than "
        "the data need on purpose; its posterior's filled components are checked below"
    )
    return []


def _run_warnings(result: xr.DataTree) -> list[str]:
    """The warnings recorded during the run (root attr ``warnings``), one line each.

    The attr is a list of strings, or after a save/load round trip possibly a JSON string
    of that list (with or without the ``results.io`` prefix) or an array of strings.
    """
    raw = _decode_value(result.attrs.get("warnings"))
    if raw is None:
        return []
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raw = [raw]
        if isinstance(raw, str):
            raw = [raw]
    items = np.asarray(raw, dtype=object).ravel().tolist()
    lines = [" ".join(str(item).split()) for item in items]
    return [f"warning during the run: {line}" for line in lines if line]


def _is_ordered(result: xr.DataTree) -> bool:
    """Whether the stored spec orders the components (``[model] ordered = true``)."""
    spec = _decode_value(result.attrs.get("spec"))
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except ValueError:
            return False
    if not isinstance(spec, dict):
        return False
    model = spec.get("model", spec)
    return isinstance(model, dict) and bool(model.get("ordered", False))


def _advi_checks(result: xr.DataTree) -> tuple[list[str], list[str]]:
    """A note on the ADVI group (an approximation: no R-hat/ESS) and its problems."""
    ds = _group(result, "advi")
    if ds is None or "w" not in ds:
        return [], []
    a = ds.attrs
    n_draws = int(np.prod([ds.sizes[d] for d in ("chain", "draw") if d in ds.sizes]))
    loss = float(a.get("final_loss", np.nan))
    steps = a.get("n", "?")
    batch = int(a.get("minibatch", 0) or 0)
    how = f"{steps} steps" + (f", minibatches of {batch} rows" if batch else "")
    note = (
        f"ADVI (mean-field approximation, {how}): {n_draws} draws from the fitted "
        f"approximation; final loss (-ELBO) {loss:.6g}. These are not posterior draws: no "
        "R-hat or ESS, and mean-field ADVI tends to understate posterior sds and "
        "correlations."
    )
    problems = []
    if "final_loss" in a and not np.isfinite(loss):
        problems.append(
            f"ADVI ended with a loss of {loss}: the optimisation diverged; lower the "
            "learning rate or start from the EM solution"
        )
    bad = [
        v
        for v in ds.data_vars
        if {"chain", "draw"} <= set(ds[v].dims)
        and np.issubdtype(ds[v].dtype, np.floating)
        and not np.isfinite(ds[v].values).all()
    ]
    if bad:
        problems.append(
            f"ADVI draws of {', '.join(bad)} are not all finite: the approximation is "
            "broken; lower the learning rate or use NUTS"
        )
    if "loss" in ds and ds["loss"].ndim == 1 and ds["loss"].size >= 20:
        # the loss history, when stored: still falling over the last tenth of the steps?
        hist = np.asarray(ds["loss"].values, dtype=float)
        m = max(2, hist.size // 10)
        last, before = hist[-m:], hist[-2 * m : -m]
        drop = float(before.mean() - last.mean())
        noise = float(last.std(ddof=1) / np.sqrt(m))
        if drop > 3 * noise and drop > 1e-3 * abs(float(last.mean())):
            problems.append(
                f"the ADVI loss was still falling at the end (by {drop:.3g} over the last "
                f"{m} steps): the approximation has not converged; run more steps"
            )
    return [note], problems


def _modal(perms: np.ndarray) -> np.ndarray:
    """The most frequent row of ``perms`` (n, K); ties go to the earliest row."""
    rows, first, inverse, counts = np.unique(
        perms, axis=0, return_index=True, return_inverse=True, return_counts=True
    )
    best = np.flatnonzero(counts == counts.max())
    return rows[best[np.argmin(first[best])]]


def _weak_components(
    post: xr.Dataset, table: pd.DataFrame, data_sd, n_obs: float | None = None
) -> list[str]:
    """Components whose posterior is poorly identified, one description each.

    Signs: the weight below ``1 / (10 K)`` in more than 10% of the draws; a posterior sd
    of ``mu`` above a quarter of the data's sd (for some feature). R-hat above ``RHAT_MAX``
    for the component's parameters is added to the description of such a component (alone
    it is no sign: short chains of a good model have it too). With ``n_obs`` (the filled
    components of a sparse/DP mixture, each holding observations by construction) the
    weight is no sign; the description says how many observations the component holds.
    """
    k = post.sizes["component"]
    small = 1.0 / (10 * k)
    w = post["w"].transpose("chain", "draw", "component").values.reshape(-1, k)
    mu_sd = None
    if "mu" in post and data_sd is not None:
        mu = post["mu"]
        if "feature" not in mu.dims:
            mu = mu.expand_dims("feature", axis=-1)
        mu = mu.transpose("chain", "draw", "component", "feature").values
        mu_sd = mu.reshape(-1, k, mu.shape[-1]).std(axis=0, ddof=1)
        if mu_sd.shape[1] != data_sd.shape[0]:
            mu_sd = None
    out = []
    for c in range(k):
        reasons = []
        frac = float(np.mean(w[:, c] < small))
        if frac > 0.1 and n_obs is None:
            reasons.append(f"w < {small:.2g} in {frac:.0%} of draws")
        if mu_sd is not None:
            ratio = mu_sd[c] / np.where(data_sd > 0, data_sd, np.inf)
            if np.max(ratio) > 0.25:
                d = int(np.argmax(ratio))
                reasons.append(
                    f"posterior sd of mu {mu_sd[c, d]:.3g} against a data sd of {data_sd[d]:.3g}"
                )
        if reasons and "component" in table and table["r_hat"].notna().any():
            # high R-hat alone is reported on its own; here it only adds to the evidence
            r = table.loc[table["component"] == c, "r_hat"]
            if (r > RHAT_MAX).any():
                reasons.append(f"R-hat up to {float(r.max()):.3f}")
        if reasons and n_obs is not None:
            reasons.append(f"about {float(np.mean(w[:, c])) * n_obs:.0f} observations")
        if reasons:
            out.append(f"component {c}: {', '.join(reasons)}")
    return out


def _switching(
    result: xr.DataTree, post: xr.Dataset, n_draws: int, ordered: bool
) -> tuple[int, list[str]]:
    """Draws permuted by a pivot relabelling, and the warning to give about them."""
    reference = next((g for g in ("em", "map") if g in result.children), "pivot")
    rel = relabel(result, method="pivot", reference=reference)["relabel"]
    perm = rel["permutation"].transpose("chain", "draw", "component").values
    # each chain's labelling is its most frequent permutation: draws away from it switched
    # within the chain; chains whose labelling differs from chain 0's use other labels
    modal = np.stack([_modal(p) for p in perm])
    within = np.any(perm != modal[:, None, :], axis=-1)
    n_switched = int(within.sum())
    chains_off = [
        int(c) for c, m in zip(post["chain"].values, modal, strict=True) if np.any(m != modal[0])
    ]
    if not (n_switched or chains_off):
        return 0, []
    where = f"{n_switched} of {n_draws} draws switch labels within chains"
    if chains_off:
        where += f"; chains {chains_off} use other labels than chain 0"
    if ordered:
        return n_switched, [
            f"the components are ordered by mu, so their labels cannot switch, yet matching "
            f"the draws on all parameters (w, mu, sigma) would permute them ({where}): "
            "components with overlapping mu trade their weights and sigmas; use fewer "
            "components, or relabel(result) to label them by all parameters"
        ]
    return n_switched, [
        f"label switching detected ({where}): per-component summaries mix components; "
        "call bayesmix.results.relabel first"
    ]


def _filled_for_checks(result: xr.DataTree, notes: list[str], messages: list[str]):
    """The filled components of a sparse or DP mixture's posterior (None for a finite one)."""
    from bayesmix.results.sparse import (
        CHECK_MAX_DRAWS,
        filled_components,
        has_empty_components,
        weights_prior_of,
    )

    if not has_empty_components(result):
        return None
    weights = weights_prior_of(result)
    try:
        filled = filled_components(result, max_draws=CHECK_MAX_DRAWS)
    except ParameterError as err:
        messages.append(f"the filled components could not be identified: {err}")
        return None
    info = filled["filled"].attrs
    kind = "sparse" if weights == "sparse" else "Dirichlet-process"
    how = str(info.get("method", ""))
    how = f" by their {how}" if how.startswith("allocations") else ""
    notes.append(
        f"{kind} mixture with K = {int(result['posterior'].sizes['component'])}: the "
        f"posterior of the number of filled components K+ has its mode at "
        f"{int(info['kplus_mode'])} ({100 * float(info['share_mode']):.0f}% of draws); R-hat, "
        f"ESS and identification are checked on the K+ = {int(info['k_plus'])} filled "
        f"components of those draws ({100 * float(info['share_permutation']):.0f}% of them "
        f"identified{how}), the empty components being draws from the prior"
    )
    return filled


def _check_estimates(estimates) -> None:
    """Refuse a table that is not ``compare_estimates``' (the R-hat and ESS columns)."""
    needed = ["parameter", "r_hat", "ess_bulk", "ess_tail"]
    missing = [c for c in needed if c not in getattr(estimates, "columns", ())]
    if missing:
        raise ParameterError(
            f"diagnose estimates: expected the table of compare_estimates(result) with "
            f"columns {needed}, got {list(getattr(estimates, 'columns', []))}; pass "
            "compare_estimates(result) or leave estimates out"
        )


def diagnose(result: xr.DataTree, *, estimates: pd.DataFrame | None = None) -> Diagnostics:
    """Check a fit for the usual problems of mixtures.

    Parameters
    ----------
    result : xarray.DataTree
        A result with a ``posterior`` group, or only ``em`` / ``map`` / ``advi`` groups
        (then only those are checked); ``sample_stats`` (``diverging``),
        ``log_likelihood`` and ``observed_data`` are used when present, and the root attrs
        ``warnings`` (warnings recorded during the run) and ``spec`` (whether the model
        orders its components).
    estimates : pandas.DataFrame, optional
        ``compare_estimates(result)`` when the caller has it already: its ``r_hat``,
        ``ess_bulk`` and ``ess_tail`` are used instead of being computed again (they are
        the costly part). Ignored for a sparse or DP mixture, whose checks use the filled
        components.

    Returns
    -------
    Diagnostics
        Checks: warnings recorded during the run (each one a problem); EM convergence, MAP
        starts that disagree, and degenerate EM/MAP components (weight x N below 2
        observations, or a sigma below 1e-3 of the data's sd); for ADVI a note that it is
        an approximation, its final loss, and non-finite draws; divergences; R-hat > 1.01
        (only with 2 or more chains); bulk or tail ESS < 400; chains that disagree on the
        number of occupied components (mean weight > ``1 / (10 K)``); label switching (a
        pivot relabelling onto the EM, MAP or best draw would permute draws away from each
        chain's most frequent labelling, or chains use different labellings; skipped when
        the tree was relabelled). For a model with ordered components, labels cannot
        switch: the check reports poorly identified components instead (weight near 0 in
        many draws, a mean spread over the data, high R-hat), which is what such
        permutations mean there. Last, observations with Pareto k > 0.7 in PSIS-LOO.
        For a sparse or Dirichlet-process mixture (``[priors] weights`` in the stored
        spec) R-hat, ESS, occupancy and identification are checked on its filled components
        (:func:`bayesmix.results.filled_components`) and on the scalars outside the
        components (``dp_alpha``, ``e0``, shared scales) over every draw; its EM/MAP
        degenerate components are a note, not a problem (it overfits K on purpose).
    """
    if not isinstance(result, xr.DataTree):
        _require_posterior(result, "diagnose")  # raises the usual DataError
    notes, messages = _point_checks(result)
    messages = _run_warnings(result) + messages
    advi_notes, advi_problems = _advi_checks(result)
    notes += advi_notes
    messages += advi_problems
    if notes and "posterior" not in result.children:
        return Diagnostics(
            n_divergences=0,
            max_rhat=np.nan,
            min_ess_bulk=np.nan,
            min_ess_tail=np.nan,
            warnings=messages,
            table=pd.DataFrame(),
            notes=notes,
        )
    post = _require_posterior(result, "diagnose")
    n_chains = int(post.sizes["chain"])
    n_draws = int(n_chains * post.sizes["draw"])
    ordered = _is_ordered(result)
    # a sparse or DP mixture: its empty components are draws from the prior and mix slowly
    # by design; the convergence and identification checks look at the filled ones
    filled = _filled_for_checks(result, notes, messages)
    checked = result if filled is None else filled

    stats = _group(result, "sample_stats")
    n_div = 0
    if stats is not None and "diverging" in stats:
        n_div = int(stats["diverging"].values.sum())
    if n_div:
        messages.append(
            f"{n_div} divergent transitions ({100 * n_div / n_draws:.1f}% of draws): the "
            "sampler missed part of the posterior; raise target_accept or simplify the model"
        )

    if estimates is not None and filled is None:
        _check_estimates(estimates)
        est = estimates
    else:
        est = compare_estimates(checked)
    if filled is not None:
        # the scalars outside the components (e.g. the concentration dp_alpha or e0, a shared
        # variance scale) are checked on every draw of the full result
        full = compare_estimates(result)
        shared = full[full["component"].isna()] if "component" in full else full
        est = pd.concat(
            [est, shared[~shared["parameter"].isin(est["parameter"])]], ignore_index=True
        )
    keys = [c for c in ("parameter", "component", "feature", "feature_bis") if c in est]
    table = pd.DataFrame(est[keys + ["r_hat", "ess_bulk", "ess_tail"]])
    # NaN R-hat (one chain, constants) is no problem: the comparisons below are False
    table["ok"] = ~(
        (table["r_hat"] > RHAT_MAX) | (table["ess_bulk"] < ESS_MIN) | (table["ess_tail"] < ESS_MIN)
    )
    max_rhat = float(np.nanmax(table["r_hat"])) if table["r_hat"].notna().any() else np.nan
    min_bulk = float(np.nanmin(table["ess_bulk"])) if table["ess_bulk"].notna().any() else np.nan
    min_tail = float(np.nanmin(table["ess_tail"])) if table["ess_tail"].notna().any() else np.nan

    def _worst(col: str, high: bool) -> str:
        row = table.loc[table[col].idxmax() if high else table[col].idxmin()]
        parts = [str(row["parameter"])]
        parts += [str(row[c]) for c in keys[1:] if pd.notna(row[c])]
        return f"{parts[0]}[{', '.join(parts[1:])}]" if len(parts) > 1 else parts[0]

    if max_rhat > RHAT_MAX:
        n_bad = int((table["r_hat"] > RHAT_MAX).sum())
        if ordered:
            todo = "run longer chains or use fewer components"
        elif "relabel" in result.children:
            todo = "run longer chains"
        else:
            todo = "relabel, or run longer chains"
        messages.append(
            f"R-hat up to {max_rhat:.3f} > {RHAT_MAX} for {n_bad} parameters (worst "
            f"{_worst('r_hat', True)}): the chains disagree; {todo}"
        )
    for col, value in (("ess_bulk", min_bulk), ("ess_tail", min_tail)):
        if value < ESS_MIN:
            kind = col.split("_")[1]
            messages.append(
                f"{kind} ESS down to {value:.0f} < {ESS_MIN} (worst {_worst(col, False)}): "
                "too few effective draws; draw more or reparametrise"
            )

    if filled is not None:
        post = filled["posterior"].to_dataset()
    occupied = _occupied(post, 0.0 if filled is not None else None)
    if len(set(occupied.values())) > 1:
        detail = ", ".join(f"chain {c}: {n}" for c, n in occupied.items())
        messages.append(
            f"chains disagree on the number of occupied components ({detail}): the posterior "
            "has several modes or K is too large; compare K with select_k"
        )

    n_switched = None
    switch_messages: list[str] = []
    if filled is None and "relabel" not in result.children and post.sizes["component"] > 1:
        n_switched, switch_messages = _switching(result, post, n_draws, ordered)
    aligned = ordered or filled is not None or "relabel" in result.children
    aligned = aligned or not switch_messages
    n_obs, data_sd = _data_sd(result)
    weak = []
    if aligned:
        weak = _weak_components(post, table, data_sd, n_obs if filled is not None else None)
    if weak and filled is not None:
        messages.append(
            f"{len(weak)} of the {post.sizes['component']} filled components "
            f"{'is' if len(weak) == 1 else 'are'} poorly "
            f"identified ({'; '.join(weak)}): a small group of observations (outliers?) "
            "whose parameters the data barely fix; look at its members in membership.csv, "
            "and if they are outliers, family = 'student_t' is robust to them"
        )
    elif weak:
        why = (
            "the components are ordered by mu, so this is not label switching: " if ordered else ""
        )
        messages.append(
            f"{len(weak)} of {post.sizes['component']} components "
            f"{'is' if len(weak) == 1 else 'are'} poorly identified "
            f"({'; '.join(weak)}): {why}the data do not support that many components; "
            "use fewer components (compare K with select_k)"
        )
    if not (ordered and weak):  # for an ordered model the weak components explain it
        messages += switch_messages

    n_high_k = None
    ll = _group(result, "log_likelihood")
    can_compute = "observed_data" in result.children and "spec" in result.attrs
    if (ll is not None and ll.data_vars) or can_compute:
        try:
            from bayesmix.results.select import loo as blocked_loo

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # the stored group when there is one, else computed a block at a time
                loo = blocked_loo(result)
            pareto_k = np.asarray(loo.pareto_k).ravel()
            n_high_k = int((~(pareto_k <= PARETO_K_MAX)).sum())  # NaN k counts as bad
        except Exception as err:  # noqa: BLE001  (LOO is an extra, never fatal)
            messages.append(f"PSIS-LOO could not be computed ({err}); check log_likelihood")
        if n_high_k:
            messages.append(
                f"{n_high_k} {'observation has' if n_high_k == 1 else 'observations have'} "
                f"Pareto k > {PARETO_K_MAX} in PSIS-LOO: the LOO "
                "estimate is unreliable for them; they are influential (outliers or tiny "
                "components)"
            )

    return Diagnostics(
        n_divergences=n_div,
        max_rhat=max_rhat,
        min_ess_bulk=min_bulk,
        min_ess_tail=min_tail,
        warnings=messages,
        table=table,
        occupied_components=occupied,
        n_switched_draws=n_switched,
        n_high_pareto_k=n_high_k,
        n_draws=n_draws,
        notes=notes,
        n_chains=n_chains,
        filled=filled,
    )
