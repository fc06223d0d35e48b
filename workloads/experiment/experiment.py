"""A small experiment: fit a line per input series and report the fits.

``python experiment.py --data DIR --out DIR`` reads every ``*.csv`` (columns ``x,y``) under
``--data`` and writes ``metrics.json`` and one ``fits/<name>.json`` per series to ``--out``:
a folder of results, as the seed's pod wrote to its persistent disk.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path


def fit(points: list[tuple[float, float]]) -> dict[str, float]:
    """Least-squares slope and intercept of ``points``."""
    xs, ys = zip(*points, strict=True)
    slope, intercept = statistics.linear_regression(xs, ys)
    return {"slope": round(slope, 4), "intercept": round(intercept, 4), "points": len(points)}


def main() -> None:
    """Fit every series under --data; write the fits and a summary under --out."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    fits = {}
    for path in sorted(args.data.rglob("*.csv")):
        with path.open(newline="") as handle:
            points = [(float(row["x"]), float(row["y"])) for row in csv.DictReader(handle)]
        fits[path.stem] = fit(points)
    (args.out / "fits").mkdir()
    for name, result in fits.items():
        (args.out / "fits" / f"{name}.json").write_text(json.dumps(result, indent=2))
    summary = {
        "series": len(fits),
        "mean_slope": round(statistics.fmean(f["slope"] for f in fits.values()), 4)
        if fits
        else None,
    }
    (args.out / "metrics.json").write_text(json.dumps(summary, indent=2))
    print(f"{len(fits)} series fitted; results in {args.out}")


if __name__ == "__main__":
    main()
