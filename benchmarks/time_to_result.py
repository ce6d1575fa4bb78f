"""Time to result: ``bayesmix fit`` against a hand-written PyMC script, each a fresh process.

The reference, ``benchmarks/handwritten_pymc.py``, does less than the main job (``pm.find_MAP``,
then ``pm.sample`` with nutpie, 4 x 1000 after 1000 tuning steps, then ``az.summary``) on the
same data (Old Faithful, K = 2, full covariances). ``bayesmix fit`` runs EM, MAP and NUTS with
the same draws and writes the result, the summaries, the plots and the report.

Each program runs as its own process, ``--runs`` times in a row, alternating; the warm figure
is the last run of each (its compile cache filled by the earlier ones). With ``--cold`` each
program also runs once on an empty PyTensor compile directory (``PYTENSOR_FLAGS=
base_compiledir=<new folder>``; Numba's cache of PyTensor functions lives there too) and an
empty bayesmix graph cache (``BAYESMIX_CACHE_DIR``), with the packages' bytecode compiled.
The phase breakdown comes from the lines each program prints on stderr,
``[ elapsed s] stage``; each phase is timed by when its line reaches this script (the
parent's clock): "startup" is from the process's start to its first line, "exit" from its
last line to the process's end.

Usage::

    uv run python benchmarks/time_to_result.py --runs 2 --cold
    uv run python benchmarks/time_to_result.py --before /tmp/old-clone/.venv/bin/bayesmix

``--before`` also times another installation's command (a clone at an earlier commit), in
the same run, for a before/after table.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STAMP = re.compile(r"^(?:bayesmix|handwritten): \[\s*([0-9.]+) s\] (.*)$")


def run_once(cmd: list[str], env: dict[str, str], cwd: Path) -> dict:
    """Run ``cmd``; note when each stage line arrives on its stderr (the parent's clock)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    stamps, tail = [], []
    for line in proc.stderr:
        tail = (tail + [line])[-40:]
        m = STAMP.match(line.strip())
        if m:
            stamps.append((time.perf_counter() - t0, m.group(2)))
    proc.wait()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write("".join(tail))
        raise SystemExit(f"{cmd[0]} exited with {proc.returncode}")
    return {"wall": wall, "stamps": stamps}


def phases(run: dict) -> list[tuple[str, float]]:
    """(phase, seconds): startup to the first stage line, each stage, exit after the last."""
    stamps = run["stamps"]
    if not stamps:
        return [("total", run["wall"])]
    out = [("startup (imports before the first line)", stamps[0][0])]
    for (t, text), (t_next, _) in zip(stamps, stamps[1:], strict=False):
        out.append((_short(text), t_next - t))
    out.append(("exit (after the last line)", run["wall"] - stamps[-1][0]))
    return out


def _short(text: str) -> str:
    text = re.sub(r"\(.*?\)", "", text)
    return text.split(":")[0].strip()[:40]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2, help="warm runs of each program (last kept)")
    ap.add_argument("--cold", action="store_true", help="also one run on an empty cache")
    ap.add_argument(
        "--bayesmix",
        default=str(Path(sys.executable).with_name("bayesmix")),
        help="the bayesmix command to time (default: this environment's)",
    )
    ap.add_argument("--before", help="also time this bayesmix command (an earlier version)")
    ap.add_argument("--spec", default=str(ROOT / "models" / "old_faithful_2d.toml"))
    args = ap.parse_args()

    import pytensor

    data = ROOT / "bayesmix" / "data" / "old_faithful.csv"
    work = Path(tempfile.mkdtemp(prefix="ttr-"))
    programs = {
        "handwritten PyMC": [
            sys.executable,
            "-W",
            "ignore",
            str(HERE / "handwritten_pymc.py"),
            str(data),
        ],
        "bayesmix fit": [args.bayesmix, "fit", args.spec, "--out", str(work / "run"), "--force"],
    }
    if args.before:
        out = str(work / "before")
        programs["bayesmix fit (before)"] = [
            args.before,
            "fit",
            args.spec,
            "--out",
            out,
            "--force",
        ]
    env = dict(os.environ)
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M')}, {platform.node()}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.1f}; python {platform.python_version()}, "
        f"pytensor {pytensor.__version__}; bayesmix command {args.bayesmix}"
    )
    results: dict[tuple[str, str], dict] = {}
    for i in range(args.runs):
        for name, cmd in programs.items():
            results[(name, "warm")] = run = run_once(cmd, env, work)
            print(f"  warm run {i + 1}: {name}: {run['wall']:.1f} s", flush=True)
    if args.cold:
        for name, cmd in programs.items():
            cache = Path(tempfile.mkdtemp(prefix="ttr-cache-"))
            cold_env = dict(
                env,
                PYTENSOR_FLAGS=f"base_compiledir={cache}",
                BAYESMIX_CACHE_DIR=str(cache / "graphs"),
            )
            results[(name, "cold")] = run = run_once(cmd, cold_env, work)
            print(f"  cold run: {name}: {run['wall']:.1f} s", flush=True)

    print("\n| program | cache | wall s | ratio to hand-written |")
    print("|---|---|---:|---:|")
    for (name, cache), run in results.items():
        ref = results[("handwritten PyMC", cache)]["wall"]
        print(f"| {name} | {cache} | {run['wall']:.1f} | {run['wall'] / ref:.2f} |")
    for (name, cache), run in results.items():
        print(f"\n{name}, {cache} cache, phases (s):")
        print("| phase | s |\n|---|---:|")
        for phase, secs in phases(run):
            print(f"| {phase} | {secs:.1f} |")


if __name__ == "__main__":
    main()
