"""A self-contained HTML report of one fitted run.

:func:`write_report` writes a single HTML page: the spec of the run, the table that compares
the EM, MAP and posterior estimates, the diagnostics in plain language and every plot, with the
PNG images embedded as base64 ``data:`` URIs. The page has inline CSS only: it needs no network,
no JavaScript and no other file, so it can be mailed or archived as it is.

Only the standard library, NumPy and pandas are imported here (no PyMC).
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayesmix._files import atomic_path
from bayesmix._validation import ParameterError
from bayesmix.families import get_family
from bayesmix.results.compare import filled_columns

__all__ = ["CAPTIONS", "write_report"]

#: Captions of the plots that :mod:`bayesmix.cli` writes, keyed by the file stem.
CAPTIONS: dict[str, str] = {
    "density_1d": "The data (histogram) with the fitted mixture density and its weighted "
    "components. Solid: posterior mean or MAP; dashed: EM.",
    "clusters_2d": "The data, each point coloured by its membership probabilities (a mix of the "
    "component colours), with 1 and 2 standard-deviation ellipses of the point estimate and "
    "thin ellipses from posterior draws when NUTS ran. With more than two features the title "
    "names the pair shown (by default the one whose components overlap least), or a scatter "
    "matrix of the features chosen. Points far outside the bulk of the data are drawn as "
    "triangles at the edge.",
    "membership_uncertainty": "Each point's probability of belonging to its most likely "
    "component, points grouped by that component (most certain first): near 1 is sure, near "
    "1/K means the point sits between clusters. The band is a 90% posterior interval.",
    "em_history": "EM objective per iteration (left; it must never decrease) and its change per "
    "iteration on a log scale (right).",
    "trace": "NUTS draws of each parameter per chain (left: density, right: draws in order). "
    "Chains should overlap and look like stationary noise. With many features only some are "
    "shown; the title says which.",
    "rank": "Rank plot: if the chains sample the same distribution, every histogram is flat.",
    "ppc": "Posterior predictive check: data sets simulated from the fitted model (thin lines) "
    "against the observed data (thick line), one panel per feature shown.",
    "k_selection": "Model selection across the number of components K.",
    "coclustering": "Posterior co-clustering: the probability that two observations share a "
    "component, whatever its label. Observations are ordered by the label-free point "
    "partition (variation of information), lines separate its clusters; a dark square is a "
    "well-identified cluster, pale rows are observations the posterior cannot place.",
    "component_images": "Each component's pixel probabilities, drawn as an image, with its "
    "weight.",
    "generated_images": "New images drawn from the fitted mixture.",
    "counts": "Counts: the share of observations at each value (bars) with the fitted "
    "probability mass of each weighted component (dashed) and of the mixture (black), one "
    "panel per feature.",
    "item_profiles": "Latent classes: each item's probability of every answer in each class "
    "(bars grouped by answer), with the class weights in the legend.",
}

_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif;
       max-width: 1240px; margin: 2em auto; padding: 0 1.2em; color: #1d232a;
       line-height: 1.45; background: #ffffff; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; border-bottom: 2px solid #d7dde3; padding-bottom: 0.2em;
     margin-top: 2em; }
.meta { color: #5a6570; font-size: 0.92em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.6em 0; }
th, td { border: 1px solid #d7dde3; padding: 0.2em 0.5em; text-align: right; }
th { background: #eef2f5; }
td.text, th.text { text-align: left; }
tbody tr:nth-child(even) { background: #f7f9fa; }
.scroll { overflow-x: auto; }
ul.diag li { margin: 0.25em 0; }
pre { background: #f4f6f8; padding: 0.7em; overflow-x: auto; font-size: 0.85em; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e3e7eb; }
figcaption { color: #3b4550; font-size: 0.92em; margin-top: 0.3em; }
.failed { border-left: 4px solid #d55e00; background: #fdf3ec; padding: 0.3em 0.9em; }
"""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    """Cell text: 4 significant digits; missing values (None, NaN, NA) as an empty cell."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float | np.floating):
        if np.isnan(value):
            return ""
        if not np.isfinite(value):
            return str(value)
        return f"{value:.4g}"
    return str(value)


def _table_html(table: pd.DataFrame, max_rows: int = 150) -> str:
    """An escaped HTML table of a DataFrame (numbers to 4 significant digits).

    The index is shown unless it is a plain RangeIndex; beyond ``max_rows`` rows the table is
    cut, with a note.
    """
    df = table.head(max_rows)
    show_index = not isinstance(df.index, pd.RangeIndex)
    index_names = [n if n is not None else "" for n in df.index.names] if show_index else []
    head = "".join(f'<th class="text">{_esc(n)}</th>' for n in index_names)
    head += "".join(f"<th>{_esc(c)}</th>" for c in df.columns)
    rows = []
    for idx, row in zip(df.index, df.itertuples(index=False), strict=True):
        idx_t = (idx if isinstance(idx, tuple) else (idx,)) if show_index else ()
        cells = "".join(f'<td class="text">{_esc(v)}</td>' for v in idx_t)
        for v in row:
            cls = "" if isinstance(v, int | float | np.number) else ' class="text"'
            cells += f"<td{cls}>{_esc(_fmt(v))}</td>"
        rows.append(f"<tr>{cells}</tr>")
    note = ""
    if len(table) > max_rows:
        note = (
            f"<p>Showing the first {max_rows} of {len(table)} rows; the full table is in "
            "summary.csv.</p>"
        )
    return (
        '<div class="scroll"><table><thead><tr>'
        + head
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></div>"
        + note
    )


def _relevant_keys(spec: dict) -> set[tuple[str, str]]:
    """The (section, key) pairs of [model] and [priors] that the spec's family reads."""
    model = spec.get("model", {}) if isinstance(spec.get("model"), dict) else {}
    try:
        fam = get_family(str(model.get("family", "gaussian")))
    except ParameterError:  # a family this version does not know: show everything
        return {(s, k) for s in ("model", "priors") for k in spec.get(s, {}) or {}}
    keys = {("model", "family"), ("model", "components")}
    if fam.covariances:
        keys.add(("model", "covariance"))
    if fam.orderable:
        keys.add(("model", "ordered"))
    keys |= {("priors", f) for f in ("weights_alpha", *fam.prior_fields)}
    return keys


def _spec_html(spec_json: str | None) -> str:
    if not spec_json:
        return "<p>(no spec stored in the result)</p>"
    try:
        spec = json.loads(spec_json)
    except (TypeError, ValueError):
        return f"<pre>{_esc(spec_json)}</pre>"
    rows = []
    relevant = _relevant_keys(spec)
    for section, content in spec.items():
        if isinstance(content, dict):
            for key, value in content.items():
                if (section, key) in relevant or section not in ("model", "priors"):
                    rows.append((section, key, value))
        else:
            rows.append(("", section, content))
    rows.sort(key=lambda r: r[0] != "")  # top-level keys (name) first
    body = "".join(
        f'<tr><td class="text">{_esc(s)}</td><td class="text">{_esc(k)}</td>'
        f'<td class="text">{_esc(json.dumps(v) if not isinstance(v, str) else v)}</td></tr>'
        for s, k, v in rows
    )
    return (
        '<table><thead><tr><th class="text">section</th><th class="text">key</th>'
        f'<th class="text">value</th></tr></thead><tbody>{body}</tbody></table>'
    )


def _diagnostics_html(diagnostics: Any) -> str:
    text = str(diagnostics).strip()
    if not text:
        return "<p>(no diagnostics)</p>"
    lines = [ln.strip().lstrip("-*").strip() for ln in text.splitlines() if ln.strip()]
    return '<ul class="diag">' + "".join(f"<li>{_esc(ln)}</li>" for ln in lines) + "</ul>"


def _figure_html(name: str, path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    caption = CAPTIONS.get(name, name.replace("_", " "))
    return (
        f'<figure id="fig-{_esc(name)}"><img src="data:image/png;base64,{data}" '
        f'alt="{_esc(name)}"><figcaption><b>{_esc(name.replace("_", " "))}.</b> '
        f"{_esc(caption)}</figcaption></figure>"
    )


#: What each column of the estimates table means (columns absent or empty are not explained).
_COLUMN_TEXT = {
    "feature_bis": "<b>feature_bis</b> is the second feature of a matrix entry (cov, corr; "
    "their lower triangle is listed)",
    "em": "<b>em</b> is the EM point estimate",
    "map": "<b>map</b> the MAP point estimate",
    "mean": "<b>mean</b> and <b>sd</b> the mean and standard deviation of the posterior draws",
    "lower": "<b>lower</b> and <b>upper</b> a {ci}% central credible interval",
    "r_hat": "<b>r_hat</b> (want at most 1.01) and <b>ess_bulk</b> / <b>ess_tail</b> (want at "
    "least 400) say whether the chains can be trusted",
    "em_z": "<b>em_z</b> is (em - mean) / sd, how many posterior sds EM lies from the "
    "posterior mean",
    "em_quantile": "<b>em_quantile</b> is the share of posterior draws below the EM estimate: "
    "about 0.5 when EM sits in the middle of the posterior, near 0 or 1 when it lies in a tail",
}


def _estimates_html(table: pd.DataFrame) -> str:
    """The paragraph explaining the columns shown, and the table without its empty columns."""
    shown = filled_columns(table)
    ci = shown.attrs.get("ci_prob", 0.94)
    ci_text = f"{100 * float(ci):.0f}" if isinstance(ci, float | int) else "94"
    parts = [text.format(ci=ci_text) for col, text in _COLUMN_TEXT.items() if col in shown.columns]
    approx = [c for c in shown.columns if str(c).startswith("advi_")]
    if approx:
        parts.append(
            "columns starting with <b>advi_</b> ("
            + ", ".join(_esc(c) for c in approx)
            + ") summarise the ADVI draws, an approximation to the posterior that is often "
            "too narrow: trust the NUTS columns where both exist"
        )
    known = {"parameter", "component", "feature", "sd", "upper", "ess_bulk", "ess_tail"}
    known |= set(_COLUMN_TEXT) | set(approx)
    other = [c for c in shown.columns if c not in known]
    if other:
        parts.append("other columns: " + ", ".join(f"<b>{_esc(c)}</b>" for c in other))
    intro = (
        "<p>The same parameters estimated by each method, components aligned across methods"
        + (": " + "; ".join(parts) + "." if parts else ".")
        + " Empty columns are left out.</p>"
    )
    return intro + _table_html(shown)


def _notes_html(result: Any, notes: Sequence[str]) -> str:
    items = []
    try:
        x = result["observed_data"]["x"]
        feats = [str(f) for f in x["feature"].values]
        shown = ", ".join(feats[:12]) + (f", ... ({len(feats)} in all)" if len(feats) > 12 else "")
        items.append(f"{x.sizes['obs_id']} observations x {x.sizes['feature']} features: {shown}")
    except (KeyError, AttributeError, TypeError):
        pass
    items += [" ".join(str(n).split()) for n in notes if str(n).strip()]
    if not items:
        return "<p>(no data information)</p>"
    return '<ul class="notes">' + "".join(f"<li>{_esc(i)}</li>" for i in items) + "</ul>"


def _failed_html(failed: Mapping[str, str]) -> str:
    items = "".join(
        f"<li><b>{_esc(name.replace('_', ' '))}</b>: {_esc(' '.join(str(why).split()))}</li>"
        for name, why in failed.items()
    )
    return f'<div class="failed"><p>Plots that could not be drawn:</p><ul>{items}</ul></div>'


def write_report(
    result: Any,
    path: str | os.PathLike,
    *,
    table: pd.DataFrame,
    diagnostics: Any,
    figures: Mapping[str, str | os.PathLike],
    title: str,
    failed_plots: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
    clusters: Sequence[str] = (),
) -> Path:
    """Write a self-contained HTML report of a fitted run.

    Parameters
    ----------
    result : xarray.DataTree
        The result of :func:`bayesmix.inference.run`; its root attrs (``spec``, ``family``,
        ``n_components``, ``bayesmix_version``, ``created``, ...) and the size of
        ``observed_data["x"]`` (obs_id, feature) are shown.
    path : path-like
        The ``.html`` file to write (atomically: written to a temporary file in the same folder
        and renamed, with the usual permissions, see :func:`bayesmix._files.atomic_path`).
    table : pandas.DataFrame
        The comparison of estimates (:func:`bayesmix.results.compare_estimates`). Columns
        with no value are left out; the paragraph above it explains the columns shown (any
        ``advi_*`` column as the ADVI approximation).
    diagnostics : object
        Anything whose ``str()`` is readable text, one finding per line
        (:func:`bayesmix.results.diagnose`).
    figures : mapping of str to path
        Plot name (e.g. ``"trace"``; used to pick the caption from :data:`CAPTIONS`) to a PNG
        file, embedded in the page as a base64 data URI, in the given order.
    title : str
        Page title.
    failed_plots : mapping of str to str, optional
        Plot name -> one-line reason, for plots that could not be drawn
        (:func:`bayesmix.plotting.write_plots`); each is named in the Plots section.
    notes : sequence of str
        Plain lines about the data (e.g. "dropped 12 rows with missing values"), listed under
        "Data" near the top.
    clusters : sequence of str
        Label-free lines about the clusters (:meth:`bayesmix.results.partition.
        PartitionSummary.lines`), in a "Clusters" section after the diagnostics.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    attrs = dict(getattr(result, "attrs", {}) or {})
    meta = []
    for key in ("family", "covariance", "n_components", "seed", "bayesmix_version", "created"):
        if key in attrs:
            meta.append(f"{key.replace('_', ' ')}: {attrs[key]}")
    try:
        x = result["observed_data"]["x"]
        meta.insert(0, f"data: {x.sizes['obs_id']} observations x {x.sizes['feature']} features")
    except (KeyError, AttributeError, TypeError):
        pass
    try:
        groups = ", ".join(sorted(result.children))
        meta.append(f"groups: {groups}")
    except AttributeError:
        pass

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
        f'<p class="meta">{" &middot; ".join(_esc(m) for m in meta)}</p>',
        '<h2 id="data">Data</h2>',
        _notes_html(result, notes),
        "<h2>Spec</h2>",
        _spec_html(attrs.get("spec")),
        "<h2>Estimates</h2>",
        _estimates_html(table),
        "<h2>Diagnostics</h2>",
        _diagnostics_html(diagnostics),
    ]
    if clusters:
        parts += [
            '<h2 id="clusters">Clusters</h2>',
            "<p>From the posterior allocations, whatever the component labels (the column "
            "<code>cluster</code> of membership.csv holds the point partition).</p>",
            "<ul>" + "".join(f"<li>{_esc(line)}</li>" for line in clusters) + "</ul>",
        ]
    parts += [
        "<h2>Plots</h2>",
    ]
    if failed_plots:
        parts.append(_failed_html(failed_plots))
    if figures:
        parts.extend(_figure_html(name, Path(p)) for name, p in figures.items())
    elif not failed_plots:
        parts.append("<p>(no plots)</p>")
    parts.append("</body></html>\n")
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(parts), encoding="utf-8")
    return path
