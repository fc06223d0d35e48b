"""Part 1: build a labelled dataset of records, each with a relevance signal.

``python -m simulations.prepare --records N --relevant FRACTION --seed S`` writes
``dataset.json`` to ``$WORKSTACK_OUTPUT_DIR`` (uploaded to ``outputs/<task id>/``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
from pathlib import Path


def main() -> None:
    """Write the dataset."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--relevant", type=float, required=True)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()
    rng = random.Random(options.seed)
    records = []
    for index in range(options.records):
        relevant = rng.random() < options.relevant
        # Relevant records tend to score higher; a screening model sees this signal plus noise.
        signal = rng.gauss(1.5 if relevant else 0.0, 1.0)
        records.append({"id": index, "relevant": relevant, "signal": round(signal, 4)})
    out = Path(os.environ["WORKSTACK_OUTPUT_DIR"]) / "dataset.json"
    out.write_text(json.dumps({"seed": options.seed, "records": records}))
    print(f"{len(records)} records, {sum(r['relevant'] for r in records)} relevant")


if __name__ == "__main__":
    main()
