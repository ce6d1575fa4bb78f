"""Sampler and model diagnostics of a mixture fit, in plain language."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from bayesmix.results.compare import compare_estimates
from bayesmix.results.labels import _group, _require_posterior, relabel

__all__ = ["Diagnostics", "diagnose", "RHAT_MAX", "ESS_MIN", "PARETO_K_MAX"]

RHAT_MAX = 1.01
ESS_MIN = 400
PARETO_K_MAX = 0.7


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
        How the EM and MAP fits went (convergence, restarts, agreement of MAP starts).
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

    @property
    def ok(self) -> bool:
        """True when no check raised a warning."""
        return not self.warnings

    def __str__(self) -> str:
        lines = list(self.notes)
        if self.n_draws:
            lines += [
                f"{self.n_draws} draws; {self.n_divergences} divergent transitions; "
                f"largest R-hat {self.max_rhat:.3f} (want <= {RHAT_MAX}); smallest ESS "
                f"{self.min_ess_bulk:.0f} bulk / {self.min_ess_tail:.0f} tail "
                f"(want >= {ESS_MIN}).",
                "Occupied components per chain: "
                + ", ".join(f"chain {c}: {n}" for c, n in self.occupied_components.items())
                + ".",
            ]
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


def _occupied(post: xr.Dataset) -> dict[int, int]:
    k = post.sizes["component"]
    mean_w = post["w"].mean("draw").transpose("chain", "component").values
    counts = (mean_w > 1.0 / (10 * k)).sum(axis=1)
    return {int(c): int(n) for c, n in zip(post["chain"].values, counts, strict=True)}


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
    return notes, problems


def diagnose(result: xr.DataTree) -> Diagnostics:
    """Check a fit for the usual problems of mixtures.

    Parameters
    ----------
    result : xarray.DataTree
        A result with a ``posterior`` group, or only ``em`` / ``map`` groups (then only
        their convergence is checked); ``sample_stats`` (``diverging``) and
        ``log_likelihood`` are used when present.

    Returns
    -------
    Diagnostics
        Checks: divergences; R-hat > 1.01; bulk or tail ESS < 400; chains that disagree on
        the number of occupied components (mean weight > ``1 / (10 K)``); label switching
        (a pivot relabelling onto the EM, MAP or best draw would permute draws; skipped when
        the tree was relabelled); observations with Pareto k > 0.7 in PSIS-LOO.
    """
    import arviz as az

    notes, messages = _point_checks(result) if isinstance(result, xr.DataTree) else ([], [])
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
    n_draws = int(post.sizes["chain"] * post.sizes["draw"])

    stats = _group(result, "sample_stats")
    n_div = 0
    if stats is not None and "diverging" in stats:
        n_div = int(stats["diverging"].values.sum())
    if n_div:
        messages.append(
            f"{n_div} divergent transitions ({100 * n_div / n_draws:.1f}% of draws): the "
            "sampler missed part of the posterior; raise target_accept or simplify the model"
        )

    est = compare_estimates(result)
    keys = [c for c in ("parameter", "component", "feature", "feature_bis") if c in est]
    table = pd.DataFrame(est[keys + ["r_hat", "ess_bulk", "ess_tail"]])
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
        messages.append(
            f"R-hat up to {max_rhat:.3f} > {RHAT_MAX} for {n_bad} parameters (worst "
            f"{_worst('r_hat', True)}): the chains disagree; relabel, or run longer chains"
        )
    for col, value in (("ess_bulk", min_bulk), ("ess_tail", min_tail)):
        if value < ESS_MIN:
            kind = col.split("_")[1]
            messages.append(
                f"{kind} ESS down to {value:.0f} < {ESS_MIN} (worst {_worst(col, False)}): "
                "too few effective draws; draw more or reparametrise"
            )

    occupied = _occupied(post)
    if len(set(occupied.values())) > 1:
        detail = ", ".join(f"chain {c}: {n}" for c, n in occupied.items())
        messages.append(
            f"chains disagree on the number of occupied components ({detail}): the posterior "
            "has several modes or K is too large; compare K with select_k"
        )

    n_switched = None
    if "relabel" not in result.children and post.sizes["component"] > 1:
        reference = next((g for g in ("em", "map") if g in result.children), "pivot")
        rel = relabel(result, method="pivot", reference=reference)["relabel"]
        perm = rel["permutation"].transpose("chain", "draw", "component").values
        # permuted relative to the draw-0 labelling of each chain: within-chain switches,
        # and relative to the reference: between-chain disagreement
        within = np.any(perm != perm[:, :1, :], axis=-1)
        across = np.any(perm[:, 0, :] != perm[0, 0, :], axis=-1)
        n_switched = int(within.sum())
        chains_off = [int(c) for c, a in zip(post["chain"].values, across, strict=True) if a]
        if n_switched or chains_off:
            where = f"{n_switched} of {n_draws} draws switch labels within chains"
            if chains_off:
                where += f"; chains {chains_off} use other labels than chain 0"
            messages.append(
                f"label switching detected ({where}): per-component summaries mix components; "
                "call bayesmix.results.relabel first"
            )

    n_high_k = None
    ll = _group(result, "log_likelihood")
    if ll is not None and ll.data_vars:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                loo = az.loo(result, pointwise=True)
            pareto_k = np.asarray(loo.pareto_k).ravel()
            n_high_k = int((~(pareto_k <= PARETO_K_MAX)).sum())  # NaN k counts as bad
        except Exception as err:  # noqa: BLE001  (LOO is an extra, never fatal)
            messages.append(f"PSIS-LOO could not be computed ({err}); check log_likelihood")
        if n_high_k:
            messages.append(
                f"{n_high_k} observations have Pareto k > {PARETO_K_MAX} in PSIS-LOO: the LOO "
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
    )
