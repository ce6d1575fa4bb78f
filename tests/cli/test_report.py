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
    assert total == len(list(out.glob("*.png"))) == 6
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
