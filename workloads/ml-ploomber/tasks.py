"""Ploomber function tasks: each takes ``product`` (and ``upstream``) as Ploomber passes them."""

from pathlib import Path

import numpy as np
import pandas as pd

SPECIES = {
    "setosa": (5.0, 3.4, 1.5, 0.2),
    "versicolor": (5.9, 2.8, 4.3, 1.3),
    "virginica": (6.6, 3.0, 5.6, 2.0),
}
COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


def get(product):
    """Get data: a deterministic iris-like dataset, 50 flowers of each of three species."""
    rng = np.random.default_rng(42)
    frames = []
    for target, means in enumerate(SPECIES.values()):
        frame = pd.DataFrame(rng.normal(means, 0.3, size=(50, 4)).round(2), columns=COLUMNS)
        frame["target"] = target
        frames.append(frame)
    df = pd.concat(frames, ignore_index=True)
    Path(str(product)).parent.mkdir(exist_ok=True, parents=True)
    df.to_parquet(str(product))


def features(upstream, product):
    """Generate new features from existing columns."""
    data = pd.read_parquet(str(upstream["get"]))
    ft = data["sepal length (cm)"] * data["sepal width (cm)"]
    df = pd.DataFrame({"sepal area (cm2)": ft})
    df.to_parquet(str(product))


def join(upstream, product):
    """Join raw data with generated features."""
    a = pd.read_parquet(str(upstream["get"]))
    b = pd.read_parquet(str(upstream["features"]))
    df = a.join(b)
    df.to_parquet(str(product))
