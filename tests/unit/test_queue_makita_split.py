"""The makita example's split of jobs.sh (pure: no asreview needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workloads" / "asreview-makita"))

from makita_flow.split import split_jobs

from workstack.sdk.queue import load_task_files

JOBS = """
# version 1.1
mkdir output
mkdir output/simulation

##################################
### DATASET: toy
##################################
mkdir output/simulation/toy/
python scripts/data_describe.py data/toy.csv -o output/simulation/toy/descriptives/d.json
mkdir output/simulation/toy/state_files
python -m asreview simulate data/toy.csv -o output/simulation/toy/state_files/sim_0.asreview
python -m asreview metrics output/simulation/toy/state_files/sim_0.asreview -o m/metrics_0.json
python -m asreview simulate data/toy.csv -o output/simulation/toy/state_files/sim_1.asreview
python -m asreview metrics output/simulation/toy/state_files/sim_1.asreview -o m/metrics_1.json

python scripts/merge_metrics.py -s m/ -o output/tables/metrics.csv
python scripts/merge_descriptives.py
"""


def test_the_parts_hold_makitas_lines_in_order_merges_after_metrics(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.sh"
    jobs.write_text(JOBS)
    parts = [p.read_text().splitlines() for p in split_jobs(jobs)]
    assert parts[0] == [
        "mkdir output",
        "mkdir output/simulation",
        "mkdir output/simulation/toy/",
        "python scripts/data_describe.py data/toy.csv -o output/simulation/toy/descriptives/d.json",
        "mkdir output/simulation/toy/state_files",
    ]
    assert [line.split()[3] for line in parts[1]] == ["simulate", "simulate"]
    assert [line.split()[3] for line in parts[2]] == ["metrics", "metrics"]
    assert [line.split()[1] for line in parts[3]] == [
        "scripts/merge_metrics.py",
        "scripts/merge_descriptives.py",
    ]
    stages = load_task_files(split_jobs(jobs)[1:])
    assert [(s.name, len(s.tasks)) for s in stages] == [
        ("jobs.sh.part2", 2),
        ("jobs.sh.part3", 2),
        ("jobs.sh.part4", 2),
    ]


def test_a_file_without_simulations_is_refused(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.sh"
    jobs.write_text("mkdir output\n")
    with pytest.raises(
        ValueError, match=r"no .simulate. line; expected a jobs\.sh written by makita"
    ):
        split_jobs(jobs)
