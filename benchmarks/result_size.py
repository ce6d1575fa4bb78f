"""Size of ``result.nc`` and peak memory of one ``bayesmix fit`` (issue 12, item 17).

Makes a seeded 5,000 x 6 data set of four separated Gaussian clusters (a temporary CSV, not
committed), runs ``bayesmix fit --data that.csv -k 4 --covariance full`` (EM + MAP + NUTS,
4 chains x 1000 draws) as a subprocess and prints

- the size of ``result.nc`` and of each of its groups (HDF5 storage, after compression);
- the peak memory: max RSS of the whole process tree (``getrusage(RUSAGE_CHILDREN)``,
  what ``/usr/bin/time -v`` reports), and, from sampling the RSS of the tree every 0.1 s,
  the peak during each stage that the command announces on stderr;
- the wall time (noisy on a shared 2-core machine).

Usage::

    uv run python benchmarks/result_size.py [--n 5000] [--keep DIR] [-- extra fit args]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd


def make_data(path: Path, n: int = 5000, d: int = 6, k: int = 4, seed: int = 12) -> None:
    """Four Gaussian clusters with centres ~N(0, 6^2) per coordinate and unit covariance."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 6, size=(k, d))
    z = rng.integers(0, k, size=n)
    x = centers[z] + rng.normal(size=(n, d))
    pd.DataFrame(x, columns=[f"x{i}" for i in range(d)]).to_csv(path, index=False)


def _tree_rss(pid: int) -> int:
    """Resident set size (bytes) of ``pid`` and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        stack.extend(children.get(p, []))
    return total


def run_fit(csv: Path, out: Path, extra: list[str]) -> dict:
    exe = Path(sys.executable).parent / "bayesmix"
    cmd = [str(exe), "fit", "--data", str(csv), "-k", "4", "--covariance", "full"]
    cmd += ["--out", str(out), "--force", *extra]
    stage = ["start"]
    peaks: dict[str, int] = {}
    order: list[str] = []
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def sample() -> None:
        while proc.poll() is None:
            s = stage[0]
            if s not in peaks:
                order.append(s)
            peaks[s] = max(peaks.get(s, 0), _tree_rss(proc.pid))
            time.sleep(0.1)

    def read_stderr(lines: list[str]) -> None:
        for line in proc.stderr:
            lines.append(line.rstrip())
            if "] " in line and "warning" not in line:
                stage[0] = line.split("] ", 1)[1].strip()[:70]

    err_lines: list[str] = []
    threads = [
        threading.Thread(target=sample, daemon=True),
        threading.Thread(target=read_stderr, args=(err_lines,), daemon=True),
    ]
    for t in threads:
        t.start()
    stdout = proc.stdout.read()
    proc.wait()
    wall = time.perf_counter() - t0
    for t in threads:
        t.join(timeout=5)
    if proc.returncode != 0:
        sys.exit(f"bayesmix fit failed ({proc.returncode}):\n{stdout}\n" + "\n".join(err_lines))
    max_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # kB on Linux
    return {
        "wall": wall,
        "max_rss": max_rss,
        "stages": [(s, peaks[s]) for s in order],
        "stderr": err_lines,
    }


def group_sizes(path: Path) -> dict[str, int]:
    import h5py

    sizes: dict[str, int] = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            group = name.split("/")[0] if "/" in name else "/"
            sizes[group] = sizes.get(group, 0) + obj.id.get_storage_size()

    with h5py.File(path, "r") as fh:
        fh.visititems(visit)
    return dict(sorted(sizes.items(), key=lambda kv: -kv[1]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="observations (default 5000)")
    parser.add_argument("--keep", type=Path, help="write the data and the run here")
    parser.add_argument("extra", nargs="*", help="extra arguments of bayesmix fit (after --)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bayesmix-size-") as tmp:
        base = args.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        csv = base / "clusters.csv"
        make_data(csv, n=args.n)
        out = base / "run"
        print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.machine()}")
        print(f"data: {args.n} x 6, 4 clusters -> bayesmix fit -k 4 --covariance full")
        res = run_fit(csv, out, args.extra)
        size = (out / "result.nc").stat().st_size
        print(f"result.nc: {size / 1e6:.1f} MB")
        for group, nbytes in group_sizes(out / "result.nc").items():
            print(f"  {group:22s} {nbytes / 1e6:8.2f} MB")
        print(f"peak memory (max RSS of the process tree): {res['max_rss'] / 2**20:.0f} MiB")
        print("peak RSS per stage (sampled every 0.1 s):")
        for name, peak in res["stages"]:
            print(f"  {peak / 2**20:6.0f} MiB  {name}")
        print(f"wall time: {res['wall']:.0f} s")


if __name__ == "__main__":
    main()
