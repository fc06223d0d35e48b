"""The tasker's part of the flow, as the seed's ``tasker.sh`` does it.

In the work folder (``$WORKSTACK_WORK_DIR``, on the storage the workers share): make the
dataset, have makita write ``jobs.sh`` (as it is), split it, run part 1 here with bash, and
return parts 2 to 4, which the workers run stage by stage. Settings come from the
environment: ``MAKITA_TEMPLATE`` (``basic``), ``MAKITA_RUNS`` (simulations per dataset, 2).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from makita_flow.dataset import write_dataset
from makita_flow.split import split_jobs
from workstack.sdk.queue import Stage, load_task_files


def work_folder() -> Path:
    """The folder every command runs in."""
    return Path(os.environ.get("WORKSTACK_WORK_DIR") or Path.cwd() / "work")


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    # jobs.sh says `python -m asreview ...`: this interpreter, which has asreview.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def stages() -> list[Stage]:
    """Prepare the work folder and return the stages the workers run."""
    work = work_folder()
    work.mkdir(parents=True, exist_ok=True)
    write_dataset(work / "data" / "toy.csv")
    template = os.environ.get("MAKITA_TEMPLATE", "basic")
    runs = os.environ.get("MAKITA_RUNS", "2")
    subprocess.run(
        [sys.executable, "-m", "asreview", "makita", "template", template,
         "--n-runs", runs, "--overwrite", "--platform", "Linux"],
        cwd=work, env=_environment(), check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    parts = split_jobs(work / "jobs.sh")
    # Part 1 cannot be split (folders, descriptives); bash runs it here, errors and all.
    subprocess.run(["bash", parts[0].name], cwd=work, env=_environment(), check=False)
    return load_task_files(parts[1:])
