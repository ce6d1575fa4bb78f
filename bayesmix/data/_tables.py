"""Bundled frequency tables (counts of counts), e.g. the death notices of Hasselblad (1969)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayesmix.data._loaders import _read_bundled_csv

__all__ = ["load_death_notices"]


def load_death_notices(expand: bool = True) -> pd.DataFrame:
    """Death notices of women aged 80+ in The Times per day, 1910-1912 (1,096 days).

    Hasselblad (1969, JASA 64, 1459-1471); Titterington, Smith & Makov (1985). The classic
    two-component Poisson mixture: the MLE is weight 0.3599 on rate 1.2561 and 0.6401 on
    rate 2.6634, log-likelihood -1989.946 (``log y!`` included).

    Parameters
    ----------
    expand : bool, default True
        True: one row per day, column ``deaths`` (int64, 1,096 rows, in increasing order).
        False: the frequency table, columns ``deaths`` (0-9) and ``days`` (the number of days
        with that many notices; fit it with ``sample_weight=df["days"]``).

    Returns
    -------
    pandas.DataFrame
    """
    table = _read_bundled_csv("death_notices.csv").astype(np.int64)
    if not expand:
        return table
    deaths = np.repeat(table["deaths"].to_numpy(), table["days"].to_numpy())
    return pd.DataFrame({"deaths": deaths})
