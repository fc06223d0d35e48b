"""Part 3: gather the metrics of every simulation into ``summary.json``."""

from __future__ import annotations

import json
import statistics
from typing import Any

from workstack.sdk.queue import current_task
from workstack.sdk.storage import open_storage


def summarize() -> dict[str, Any]:
    """Read every ``outputs/*/metrics.json`` and write the work saved per noise level."""
    task = current_task()
    storage = open_storage(task.storage_url)
    metrics = [
        json.loads(storage.read_text(key))
        for key in storage.list("outputs")
        if key.endswith("/metrics.json")
    ]
    by_noise: dict[str, list[float]] = {}
    for item in metrics:
        by_noise.setdefault(str(item["noise"]), []).append(item["wss"])
    summary = {
        "simulations": len(metrics),
        "wss_by_noise": {
            noise: {"mean": round(statistics.fmean(values), 4), "runs": len(values)}
            for noise, values in sorted(by_noise.items())
        },
    }
    (task.output_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
