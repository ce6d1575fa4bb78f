"""Session-wide test settings: headless plots, quiet PyMC logging."""

import logging
import os

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

logging.getLogger("pymc").setLevel(logging.ERROR)
