"""Preprocess one CSV export: ``python -m clc.preprocess FILE --out OUT``.

The script the Luigi pipeline started once per file (``['python', '-m', 'clc.preprocess',
filename]``), with an argparse command line. It lower-cases and trims the header, drops blank
and duplicate rows and writes the result to ``--out``. A file without a header exits 65
(EX_DATAERR): workstack counts it as bad input and does not retry it.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

EX_DATAERR = 65


def preprocess(source: Path, target: Path) -> int:
    """Clean ``source`` into ``target``; returns the number of rows written."""
    with source.open(newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    if not rows or len(rows[0]) < 2:
        raise ValueError(f"{source.name}: no header row")
    header = [cell.strip().lower().replace(" ", "_") for cell in rows[0]]
    seen: set[tuple[str, ...]] = set()
    body = []
    for row in rows[1:]:
        cleaned = tuple(cell.strip() for cell in row)
        if cleaned not in seen:
            seen.add(cleaned)
            body.append(cleaned)
    with target.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([header, *body])
    return len(body)


def main(argv: list[str] | None = None) -> int:
    """The command line: parse, preprocess, return an exit status."""
    parser = argparse.ArgumentParser(prog="python -m clc.preprocess", description=__doc__)
    parser.add_argument("filename", type=Path, help="the CSV file to preprocess")
    parser.add_argument("--out", type=Path, required=True, help="where to write the result")
    args = parser.parse_args(argv)
    try:
        count = preprocess(args.filename, args.out)
    except ValueError as error:
        print(error, file=sys.stderr)
        return EX_DATAERR
    print(f"{args.filename.name}: {count} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
