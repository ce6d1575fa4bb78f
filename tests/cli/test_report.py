"""The HTML report: self-contained, escaped, and every image loads in a real browser."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.figure import Figure

from bayesmix.report import write_report

CHECK_SCRIPT = """
<script>
window.addEventListener("load", function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) {
    if (imgs[i].complete && imgs[i].naturalWidth > 0) { ok++; }
  }
  var d = document.createElement("div");
  d.id = "imgcheck";
  d.textContent = "loaded=" + ok + " total=" + imgs.length;
  document.body.appendChild(d);
});
</script>
"""


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _png(path: Path, color: str) -> Path:
    fig = Figure(figsize=(3, 2))
    fig.add_subplot().plot([0, 1, 2], [0, 1, 0], color=color)
    fig.savefig(path, format="png")
    return path


@pytest.fixture
def tiny_report(tmp_path) -> Path:
    tree = xr.DataTree(
        children={
            "observed_data": xr.DataTree(
                xr.Dataset(
                    {"x": (("obs_id", "feature"), np.zeros((5, 2)))},
                    coords={"obs_id": np.arange(5), "feature": ["a", "b"]},
                )
            )
        }
    )
    tree.attrs = {
        "family": "gaussian",
        "n_components": 2,
        "covariance": "full",
        "spec": '{"name": "t<b>", "model": {"components": 2}}',
    }
    table = pd.DataFrame(
        {
            "parameter": ["w", "w"],
            "component": [0, 1],
            "em": [0.25, 0.75],
            "note": ["<i>x</i>", "a & b"],
        }
    )
    figures = {
        "trace": _png(tmp_path / "trace.png", "red"),
        "my_plot": _png(tmp_path / "my_plot.png", "blue"),
    }
    out = tmp_path / "report.html"
    write_report(
        tree,
        out,
        table=table,
        diagnostics="R-hat <= 1.01 everywhere\nall good",
        figures=figures,
        title="Run <script>alert(1)</script>",
    )
    return out


def test_report_is_self_contained_and_escaped(tiny_report):
    text = tiny_report.read_text(encoding="utf-8")
    assert "<script>" not in text  # the title is escaped, and no JavaScript is needed
    assert "Run &lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;i&gt;x&lt;/i&gt;" in text and "a &amp; b" in text
    assert "R-hat &lt;= 1.01 everywhere" in text
    assert "t&lt;b&gt;" in text  # the spec
    assert "5 observations x 2 features" in text
    # images are embedded, decode to the PNGs, nothing refers outside the page
    srcs = re.findall(r'<img src="([^"]+)"', text)
    assert len(srcs) == 2
    for src, name in zip(srcs, ["trace", "my_plot"], strict=True):
        assert src.startswith("data:image/png;base64,")
        raw = base64.b64decode(src.split(",", 1)[1])
        assert raw == (tiny_report.parent / f"{name}.png").read_bytes()
    assert not re.search(r'(src|href)="(?!data:)', text)
    assert "<figcaption>" in text and "Chains should overlap" in text  # caption of "trace"
    assert sorted(p.name for p in tiny_report.parent.iterdir()) == [
        "my_plot.png",
        "report.html",
        "trace.png",
    ]  # no temporary file left


def _loaded_images(chromium: str, report: Path, tmp_path: Path) -> tuple[int, int]:
    page = tmp_path / "check.html"
    page.write_text(report.read_text(encoding="utf-8") + CHECK_SCRIPT, encoding="utf-8")
    res = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    m = re.search(r"loaded=(\d+) total=(\d+)", res.stdout)
    assert m, f"no check result from chromium (rc={res.returncode}): {res.stderr[-2000:]}"
    return int(m.group(1)), int(m.group(2))


needs_chromium = pytest.mark.skipif(
    _chromium() is None,
    reason="chromium is not installed (apt-get install -y chromium); cannot check images load",
)


@needs_chromium
def test_tiny_report_images_load_in_chromium(tiny_report, tmp_path):
    loaded, total = _loaded_images(_chromium(), tiny_report, tmp_path)
    assert (loaded, total) == (2, 2)


@needs_chromium
def test_em_report_images_load_in_chromium(em_run, tmp_path):
    loaded, total = _loaded_images(_chromium(), em_run / "report.html", tmp_path)
    assert total == len(list(em_run.glob("*.png"))) == 3
    assert loaded == total


@needs_chromium
def test_main_report_images_load_in_chromium(main_run, tmp_path):
    out, _ = main_run
    loaded, total = _loaded_images(_chromium(), out / "report.html", tmp_path)
    assert total == len(list(out.glob("*.png"))) == 7
    assert loaded == total


def test_broken_image_is_detected(tmp_path):
    """The check itself can fail: a PNG with corrupt bytes is counted as not loaded."""
    if _chromium() is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    good = _png(tmp_path / "good.png", "green")
    out = tmp_path / "r.html"
    write_report(
        xr.DataTree(),
        out,
        table=pd.DataFrame({"a": [1.0]}),
        diagnostics="",
        figures={"bad": bad, "good": good},
        title="t",
    )
    loaded, total = _loaded_images(_chromium(), out, tmp_path)
    assert (loaded, total) == (1, 2)


# --------------------------------------------------------------------------------------------
# failed plots, data notes, the columns of the estimates table, file permissions
# --------------------------------------------------------------------------------------------


def _small_tree() -> xr.DataTree:
    tree = xr.DataTree(
        children={
            "observed_data": xr.DataTree(
                xr.Dataset(
                    {"x": (("obs_id", "feature"), np.zeros((7, 3)))},
                    coords={"obs_id": np.arange(7), "feature": ["a", "b", "c"]},
                )
            )
        }
    )
    tree.attrs = {"family": "gaussian", "n_components": 2}
    return tree


def _section(text: str, heading: str) -> str:
    """The HTML between ``<h2 ...>heading</h2>`` and the next ``<h2``."""
    m = re.search(rf"<h2[^>]*>{heading}</h2>(.*?)(?=<h2|</body>)", text, flags=re.S)
    assert m, heading
    return m.group(1)


def test_failed_plots_are_named_with_their_reason(tmp_path):
    out = tmp_path / "r.html"
    write_report(
        _small_tree(),
        out,
        table=pd.DataFrame({"parameter": ["w"], "em": [1.0]}),
        diagnostics="",
        figures={"trace": _png(tmp_path / "trace.png", "red")},
        title="t",
        failed_plots={"rank": "ValueError: Requested 52 subplots <b>", "ppc": "KeyError: 'x'"},
    )
    plots = _section(out.read_text(encoding="utf-8"), "Plots")
    assert "could not be drawn" in plots
    assert "<b>rank</b>: ValueError: Requested 52 subplots &lt;b&gt;" in plots
    assert "<b>ppc</b>: KeyError: &#x27;x&#x27;" in plots
    assert plots.count("<img ") == 1


def test_data_notes_are_listed_near_the_top(tmp_path):
    out = tmp_path / "r.html"
    notes = ["dropped 12 rows with missing values", "read as semicolon-separated <csv>"]
    write_report(
        _small_tree(),
        out,
        table=pd.DataFrame({"parameter": ["w"], "em": [1.0]}),
        diagnostics="",
        figures={},
        title="t",
        notes=notes,
    )
    text = out.read_text(encoding="utf-8")
    data = _section(text, "Data")
    assert "7 observations x 3 features: a, b, c" in data
    assert "<li>dropped 12 rows with missing values</li>" in data
    assert "read as semicolon-separated &lt;csv&gt;" in data
    assert text.index('id="data"') < text.index("<h2>Spec</h2>") < text.index("<h2>Estimates")


def _estimates_table() -> pd.DataFrame:
    """A table as compare_estimates makes it for a NUTS run (no MAP), plus ADVI columns."""
    table = pd.DataFrame(
        {
            "parameter": ["w", "w"],
            "component": [0, 1],
            "feature": [None, None],
            "em": [0.3, 0.7],
            "map": [np.nan, np.nan],
            "mean": [0.31, 0.69],
            "sd": [0.02, 0.02],
            "lower": [0.27, 0.65],
            "upper": [0.35, 0.73],
            "r_hat": [1.0, 1.0],
            "ess_bulk": [800.0, 810.0],
            "ess_tail": [700.0, 690.0],
            "em_z": [-0.5, 0.5],
            "em_quantile": [0.31, 0.69],
            "advi_mean": [0.3, 0.7],
            "advi_sd": [0.01, 0.01],
        }
    )
    table.attrs["ci_prob"] = 0.9
    return table


def test_estimates_show_only_filled_columns_and_explain_them(tmp_path):
    out = tmp_path / "r.html"
    write_report(
        _small_tree(),
        out,
        table=_estimates_table(),
        diagnostics="",
        figures={},
        title="t",
    )
    est = _section(out.read_text(encoding="utf-8"), "Estimates")
    head = re.findall(r"<th[^>]*>([^<]*)</th>", est)
    assert head == [
        "parameter",
        "component",
        "em",
        "mean",
        "sd",
        "lower",
        "upper",
        "r_hat",
        "ess_bulk",
        "ess_tail",
        "em_z",
        "em_quantile",
        "advi_mean",
        "advi_sd",
    ]  # map and feature are empty in every row
    assert "<b>em_quantile</b> is the share of posterior draws below the EM estimate" in est
    assert "90% central credible interval" in est  # from table.attrs["ci_prob"]
    assert "advi_mean, advi_sd" in est and "approximation" in est
    assert "<b>map</b>" not in est  # no explanation of a column that is not shown
    # every column shown is explained
    explained = set(re.findall(r"<b>([a-z_]+)</b>", est.split("<table>")[0]))
    assert set(head) - {"parameter", "component", "advi_mean", "advi_sd"} <= explained


def test_estimates_paragraph_for_an_em_only_table(tmp_path):
    out = tmp_path / "r.html"
    table = _estimates_table()
    for col in table.columns[4:]:
        table[col] = np.nan
    write_report(_small_tree(), out, table=table, diagnostics="", figures={}, title="t")
    est = _section(out.read_text(encoding="utf-8"), "Estimates")
    assert re.findall(r"<th[^>]*>([^<]*)</th>", est) == ["parameter", "component", "em"]
    assert "em_quantile" not in est and "r_hat" not in est


def test_report_file_gets_the_usual_permissions(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        out = write_report(
            _small_tree(),
            tmp_path / "r.html",
            table=pd.DataFrame({"a": [1.0]}),
            diagnostics="",
            figures={},
            title="t",
        )
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]
