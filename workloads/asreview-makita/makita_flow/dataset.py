"""A small labelled dataset, made here so the example needs no download.

Records have a title, an abstract and ``label_included`` (1 for the relevant ones), which is
what ``asreview simulate`` needs. Relevant records share a vocabulary of their own, so a model
finds them early and the metrics are worth reading; the same seed gives the same file.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

RELEVANT = ["randomized", "trial", "screening", "placebo", "efficacy", "cohort", "outcome"]
OTHER = ["protein", "galaxy", "soil", "market", "engine", "poetry", "river", "glacier", "opera"]
FILLER = ["study", "results", "method", "analysis", "data", "report", "sample", "effect"]


def write_dataset(
    path: Path, *, records: int = 200, relevant_every: int = 10, seed: int = 7
) -> Path:
    """Write ``records`` rows to ``path`` (CSV), every ``relevant_every``-th one relevant."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    with temp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["title", "abstract", "label_included"])
        for index in range(records):
            relevant = index % relevant_every == 0
            words = [rng.choice(RELEVANT if relevant else OTHER) for _ in range(6)]
            words += [rng.choice(FILLER) for _ in range(20)]
            rng.shuffle(words)
            writer.writerow([" ".join(words[:6]).title(), " ".join(words), int(relevant)])
    temp.replace(path)
    return path
