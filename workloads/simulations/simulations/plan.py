"""The workload's entrypoint: its stages, from the task files in ``jobs/``."""

from __future__ import annotations

from pathlib import Path

from workstack.sdk.queue import Stage, load_task_files

JOBS = Path(__file__).resolve().parent.parent / "jobs"


def stages() -> list[Stage]:
    """Prepare, simulate, summarize: each stage starts when the one before is done."""
    return load_task_files([JOBS / "prepare.txt", JOBS / "simulate.txt", JOBS / "summarize.txt"])
