"""A small benchmark in the spirit of DeepEcho's: every model is scored on every dataset.

Each (dataset, model) pair is one Dask task: it generates a synthetic time series dataset
from a seed, "fits" the model on its first 80% and scores the forecast on the rest. The
scores are deterministic for a given seed, so results can be compared across runs and
clusters. ``run_benchmark`` returns one row per pair as a pandas DataFrame.
"""

from __future__ import annotations

import time

import dask
import numpy as np
import pandas as pd

MODELS = ("mean", "last", "drift", "seasonal")


def _dataset(number: int, rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + number)
    steps = np.arange(rows)
    season = np.sin(2 * np.pi * steps / (12 + number % 5))
    return 10 + 0.01 * number * steps + 3 * season + rng.normal(0, 0.5, rows)


def _forecast(model: str, history: np.ndarray, horizon: int) -> np.ndarray:
    if model == "mean":
        return np.full(horizon, history.mean())
    if model == "last":
        return np.full(horizon, history[-1])
    if model == "drift":
        slope = (history[-1] - history[0]) / (len(history) - 1)
        return history[-1] + slope * np.arange(1, horizon + 1)
    if model == "seasonal":
        period = 12
        return np.resize(history[-period:], horizon)
    raise ValueError(f"unknown model {model!r}; known: {', '.join(MODELS)}")


def score(number: int, model: str, rows: int, seed: int, delay: float = 0.0) -> dict[str, object]:
    """Fit ``model`` on dataset ``number`` and return its forecast error."""
    started = time.perf_counter()
    if delay:
        time.sleep(delay)  # lets tests keep tasks in flight long enough to kill a worker
    series = _dataset(number, rows, seed)
    split = int(len(series) * 0.8)
    forecast = _forecast(model, series[:split], len(series) - split)
    error = float(np.sqrt(np.mean((forecast - series[split:]) ** 2)))
    return {
        "dataset": f"dataset-{number:02d}",
        "model": model,
        "rmse": round(error, 6),
        "seconds": round(time.perf_counter() - started, 4),
    }


def run_benchmark(
    datasets: int = 4,
    models: list[str] | None = None,
    rows: int = 5000,
    seed: int = 0,
    delay: float = 0.0,
) -> pd.DataFrame:
    """Score every model on every dataset, one Dask task per pair, on the current client."""
    chosen = list(models or MODELS)
    unknown = sorted(set(chosen) - set(MODELS))
    if unknown:
        raise ValueError(f"unknown models {unknown}; known: {', '.join(MODELS)}")
    tasks = [
        dask.delayed(score)(number, model, rows, seed, delay)
        for number in range(datasets)
        for model in chosen
    ]
    rows_out = dask.compute(*tasks)
    frame = pd.DataFrame(list(rows_out))
    return frame.sort_values(["dataset", "model"]).reset_index(drop=True)
