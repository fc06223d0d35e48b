"""Split makita's ``jobs.sh`` into parts, as the seed's ``split-file.py`` does, plus one.

The seed's rules: part 1 is everything before the first ``simulate`` line, and the ``mkdir``
and ``describe`` lines among the simulations (folders and descriptives the others need);
part 2 is the ``simulate`` lines (independent: the workers run them in parallel); part 3 is
the rest. The seed's part 3 mixes the ``metrics`` line of each simulation with the scripts
that merge all metrics into tables; run in parallel, a merge can start before the metrics it
reads exist (and, with bash's error semantics, quietly write a partial table). So here part 3
keeps the per-simulation lines and part 4 the lines after them that read their results.
Comments and blank lines are dropped; every other line is kept as makita wrote it.
"""

from __future__ import annotations

from pathlib import Path


def _part(line: str, index: int, first: int, last: int) -> int:
    if index < first:
        return 1
    if "asreview metrics" in line:  # the last simulation's metrics come after its line
        return 3
    if index > last:
        return 4
    if "mkdir" in line or "describe" in line:
        return 1
    if "simulate" in line:
        return 2
    return 4


def split_jobs(path: Path) -> list[Path]:
    """Write ``<path>.part1`` to ``.part4`` next to ``path``; return them.

    Raises:
        ValueError: The file has no ``simulate`` line (not a makita jobs file).
    """
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    simulate = [i for i, line in enumerate(lines) if "simulate" in line]
    if not simulate:
        raise ValueError(f"{path}: no 'simulate' line; expected a jobs.sh written by makita")
    first, last = simulate[0], simulate[-1]
    parts: dict[int, list[str]] = {1: [], 2: [], 3: [], 4: []}
    for index, line in enumerate(lines):
        if line.strip() and not line.lstrip().startswith("#"):
            parts[_part(line, index, first, last)].append(line)
    written = []
    for number, content in parts.items():
        target = path.with_name(f"{path.name}.part{number}")
        target.write_text("".join(content), encoding="utf-8")
        written.append(target)
    return written
