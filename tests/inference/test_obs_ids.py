"""Row ids of the data (a DataFrame index) become the obs_id coordinate of every group."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayesmix as bm
from bayesmix.config import FitSpec, ModelSpec, RunSpec
from bayesmix.data import load_old_faithful, load_table
from bayesmix.inference import fit_em, membership, run, sample_posterior_predictive
from bayesmix.inference._tree import obs_id_coord, row_labels

SPEC = ModelSpec("gaussian", 2, "diag")
EM_ONLY = RunSpec(name="ids", model=SPEC, fit=FitSpec(methods=("em",), seed=0))


@pytest.fixture(scope="module")
def labelled():
    """Old Faithful's first 60 rows, indexed by the strings 'r0', 'r1', ... in reverse."""
    df = load_old_faithful().iloc[:60].copy()
    df.index = [f"r{i}" for i in range(59, -1, -1)]
    return df


def test_row_labels():
    X = np.zeros((3, 2))
    assert row_labels(X) is None
    assert row_labels(pd.DataFrame(X)) is None  # the default 0..N-1
    assert row_labels(pd.DataFrame(X, index=[0, 1, 2])) is None  # the same, not a RangeIndex
    ints = row_labels(pd.DataFrame(X, index=[5, 2, 9]))
    assert ints.dtype == np.int64 and ints.tolist() == [5, 2, 9]
    strs = row_labels(pd.DataFrame(X, index=["a", "b", "c"]))
    assert strs.dtype.kind == "U" and strs.tolist() == ["a", "b", "c"]
    assert row_labels(pd.DataFrame(X, index=["a", "a", "c"])) is None  # repeated: positions
    assert row_labels(pd.Series([1.0, 2.0], index=[3, 4])).tolist() == [3, 4]


def test_run_puts_the_index_into_every_group(labelled):
    tree = run(EM_ONLY, labelled)
    labels = labelled.index.tolist()
    assert tree["observed_data"]["obs_id"].values.tolist() == labels
    m = membership(tree, group="em")
    assert m["obs_id"].values.tolist() == labels
    # the same numbers as without labels
    plain = membership(run(EM_ONLY, labelled.reset_index(drop=True)), group="em")
    np.testing.assert_allclose(m["mean"].values, plain["mean"].values)
    assert plain["obs_id"].values.tolist() == list(range(60))
    # new points are not the observed rows: positions
    new = membership(tree, labelled.to_numpy()[:5], group="em")
    assert new["obs_id"].values.tolist() == [0, 1, 2, 3, 4]
    # posterior predictive replicates of the observed rows carry their ids
    em = tree["em"].to_dataset()[["w", "mu", "sigma"]]
    tree["posterior"] = xr.DataTree(em.expand_dims(chain=[0], draw=[0, 1]))
    sample_posterior_predictive(tree, random_seed=0)
    assert tree["posterior_predictive"]["obs_id"].values.tolist() == labels


def test_ids_survive_save_and_load(labelled, tmp_path):
    tree = run(EM_ONLY, labelled)
    back = bm.results.load(bm.results.save(tree, tmp_path / "r.nc"))
    assert back["observed_data"]["obs_id"].values.tolist() == labelled.index.tolist()


def test_load_table_ids_and_dropped_rows_reach_the_result(tmp_path):
    X = load_old_faithful().iloc[:40]
    df = X.assign(patient=[f"P{i:03d}" for i in range(40)])
    df.loc[[3, 7], "waiting"] = np.nan
    df.to_csv(tmp_path / "d.csv", index=False)
    table = load_table(tmp_path / "d.csv", id_column="patient", dropna=True)
    tree = run(EM_ONLY, table)
    expected = [f"P{i:03d}" for i in range(40) if i not in (3, 7)]
    assert tree["observed_data"]["obs_id"].values.tolist() == expected
    # without ids, the original row numbers of the kept rows
    table = load_table(tmp_path / "d.csv", ["eruptions", "waiting"], dropna=True)
    tree = run(EM_ONLY, table)
    assert tree["observed_data"]["obs_id"].values.tolist() == [
        i for i in range(40) if i not in (3, 7)
    ]
    assert membership(tree, group="em")["obs_id"].values.tolist() == table.index.tolist()


def test_obs_id_coord_without_observed_data():
    assert obs_id_coord(None, 3).tolist() == [0, 1, 2]
    assert obs_id_coord(xr.DataTree(), 2).tolist() == [0, 1]


def test_fit_em_puts_the_index_into_observed_data(labelled):
    tree = fit_em(SPEC, labelled, random_state=0)
    assert tree["observed_data"]["obs_id"].values.tolist() == labelled.index.tolist()
    assert membership(tree, group="em")["obs_id"].values.tolist() == labelled.index.tolist()
