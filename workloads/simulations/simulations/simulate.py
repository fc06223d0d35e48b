"""Part 2: one screening simulation.

Records are read in the order of a noisy model score; the simulation counts how many must be
read to find ``--recall`` of the relevant ones, and the work saved against reading at random
(WSS). ``python -m simulations.simulate --seed S --noise X --recall R`` reads the dataset that
part 1 stored and writes ``metrics.json`` to ``$WORKSTACK_OUTPUT_DIR``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
from pathlib import Path

from workstack.sdk.storage import open_storage


def main() -> None:
    """Run one simulation and write its metrics."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--noise", type=float, required=True)
    parser.add_argument("--recall", type=float, default=0.95)
    options = parser.parse_args()
    storage = open_storage(os.environ["WORKSTACK_STORAGE_URL"])
    records = json.loads(storage.read_text("outputs/prepare/dataset.json"))["records"]
    rng = random.Random(options.seed)
    scored = sorted(
        records, key=lambda r: r["signal"] + rng.gauss(0.0, options.noise), reverse=True
    )
    wanted = math.ceil(options.recall * sum(r["relevant"] for r in records))
    found = read = 0
    for read, record in enumerate(scored, start=1):  # noqa: B007 - read is the result
        found += record["relevant"]
        if found >= wanted:
            break
    metrics = {
        "seed": options.seed,
        "noise": options.noise,
        "recall": options.recall,
        "read": read,
        "records": len(records),
        "wss": round(1 - read / len(records) - (1 - options.recall), 4),
    }
    (Path(os.environ["WORKSTACK_OUTPUT_DIR"]) / "metrics.json").write_text(json.dumps(metrics))
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
