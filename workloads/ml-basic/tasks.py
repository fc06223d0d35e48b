"""The ml-basic steps. Each takes ``inputs`` and ``outputs``: dicts of local paths by name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

SPECIES = {
    "setosa": (5.0, 3.4, 1.5, 0.2),
    "versicolor": (5.9, 2.8, 4.3, 1.3),
    "virginica": (6.6, 3.0, 5.6, 2.0),
}
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def get(inputs: dict[str, Path], outputs: dict[str, Path]) -> None:
    """A deterministic iris-like dataset: 50 flowers of each of three species."""
    rng = np.random.default_rng(42)
    frames = []
    for species, means in SPECIES.items():
        values = rng.normal(means, 0.3, size=(50, 4)).round(2)
        frame = pd.DataFrame(values, columns=COLUMNS)
        frame["species"] = species
        frames.append(frame)
    data = pd.concat(frames, ignore_index=True)
    data.insert(0, "id", range(len(data)))
    data.to_csv(outputs["raw"], index=False)


def features(inputs: dict[str, Path], outputs: dict[str, Path]) -> None:
    """Ratios and areas that separate the species better than the raw measures."""
    raw = pd.read_csv(inputs["raw"])
    derived = pd.DataFrame(
        {
            "id": raw["id"],
            "sepal_ratio": (raw["sepal_length"] / raw["sepal_width"]).round(4),
            "petal_area": (raw["petal_length"] * raw["petal_width"]).round(4),
        }
    )
    derived.to_csv(outputs["features"], index=False)


def join(inputs: dict[str, Path], outputs: dict[str, Path]) -> None:
    """Raw measures and derived features, one row per flower."""
    raw = pd.read_csv(inputs["raw"])
    derived = pd.read_csv(inputs["features"])
    joined = raw.merge(derived, on="id", validate="one_to_one")
    joined.to_csv(outputs["joined"], index=False)


def fit(inputs: dict[str, Path], outputs: dict[str, Path]) -> None:
    """A nearest-centroid classifier on every other flower, scored on the rest."""
    data = pd.read_csv(inputs["joined"])
    predictors = [c for c in data.columns if c not in ("id", "species")]
    train, test = data[data["id"] % 2 == 0], data[data["id"] % 2 == 1]
    centroids = train.groupby("species")[predictors].mean()
    distances = ((test[predictors].to_numpy()[:, None, :] - centroids.to_numpy()[None]) ** 2).sum(
        axis=2
    )
    predicted = centroids.index.to_numpy()[distances.argmin(axis=1)]
    accuracy = float((predicted == test["species"].to_numpy()).mean())
    outputs["model"].write_text(
        json.dumps(
            {"predictors": predictors, "centroids": centroids.round(4).to_dict("index")}, indent=2
        )
    )
    outputs["metrics"].write_text(
        json.dumps({"accuracy": round(accuracy, 4), "test_rows": len(test)}, indent=2)
    )
