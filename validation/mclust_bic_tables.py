"""bayesmix's BIC tables against R mclust 6.0's, every model and K = 1..9 (issue 18).

Reads mclust's tables from ``validation/mclust_reference/<name>_bic.csv`` (written by
``Rscript validation/mclust_reference.R``) and computes bayesmix's with
``bayesmix.em.selection.bic_table`` (mclust's start: hierarchical clustering VVV on the
scaled SVD of the data, quantile classes for one feature; ``n_init=1``). For each cell:
within 0.01 of mclust's, better (a higher BIC: a better optimum or a tighter convergence)
or worse. Writes ``validation/results/mclust_bic_tables.csv`` (one row per cell) and prints
a summary per data set; ``--restarts N`` also tries N k-means starts per cell after the
hierarchical one (``n_init = 1 + N``; ``mclust_bic_tables_restartsN.csv``).

    uv run python validation/mclust_bic_tables.py
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bayesmix.data import load_acidity, load_galaxies, load_iris, load_old_faithful
from bayesmix.em.selection import bic_table

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "mclust_reference"
TOLERANCE = 0.01

DATA = {
    "faithful": lambda: load_old_faithful().to_numpy(dtype=float),
    "acidity": lambda: load_acidity().to_numpy(dtype=float),
    "galaxies": lambda: load_galaxies("1000 km/s").to_numpy(dtype=float),
    "iris": lambda: load_iris().to_numpy(dtype=float),
}


def compare(name: str, restarts: int) -> pd.DataFrame:
    """One row per cell of one data set's table: mclust's BIC, ours, and which is higher."""
    ref = pd.read_csv(REFERENCE / f"{name}_bic.csv").set_index("G")
    X = DATA[name]()
    start = time.perf_counter()
    ours = bic_table(
        X, ks=ref.index, covariance_types=list(ref.columns), n_init=1 + restarts, random_state=0
    )
    seconds = time.perf_counter() - start
    rows = []
    for k in ref.index:
        for model in ref.columns:
            theirs, mine = ref.loc[k, model], ours.bic.loc[k, model]
            if np.isnan(theirs) and np.isnan(mine):
                status = "both NA"
            elif np.isnan(mine):
                status = "ours NA"
            elif np.isnan(theirs):
                status = "mclust NA"
            elif abs(mine - theirs) <= TOLERANCE:
                status = "same"
            elif mine > theirs:
                status = "better"
            else:
                status = "worse"
            rows.append(
                {
                    "data": name,
                    "k": int(k),
                    "model": model,
                    "mclust_bic": theirs,
                    "bayesmix_bic": mine,
                    "difference": mine - theirs,
                    "status": status,
                }
            )
    table = pd.DataFrame(rows)
    counts = table["status"].value_counts().to_dict()
    print(
        f"{name}: {len(table)} cells in {seconds:.1f} s: {counts}; best by BIC "
        f"{ours.best('bic')} {ours.top(1)[0][2]:.4f}, by ICL {ours.best('icl')} "
        f"{ours.top(1, 'icl')[0][2]:.4f}"
    )
    for _, r in table[
        table["status"].isin(["better", "worse", "ours NA", "mclust NA"])
    ].iterrows():
        print(
            f"  {r['model']},{r['k']}: mclust {r['mclust_bic']:.4f}, bayesmix "
            f"{r['bayesmix_bic']:.4f} ({r['status']}, {r['difference']:+.4f})"
        )
    return table


def main() -> None:
    """Compare the four data sets and write the cells to validation/results/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, default=0)
    parser.add_argument("--data", nargs="+", default=list(DATA))
    args = parser.parse_args()
    out = pd.concat([compare(name, args.restarts) for name in args.data], ignore_index=True)
    suffix = f"_restarts{args.restarts}" if args.restarts else ""
    path = HERE / "results" / f"mclust_bic_tables{suffix}.csv"
    out.to_csv(path, index=False, float_format="%.6f")
    print(f"wrote {path.relative_to(HERE.parent)}: {out['status'].value_counts().to_dict()}")


if __name__ == "__main__":
    main()
