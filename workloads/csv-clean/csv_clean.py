"""Clean one raw CSV export: the preprocessing step the Luigi pipeline ran per file.

- header names become lower_snake_case (and must be unique);
- cells are trimmed and inner whitespace collapsed; ``NA``, ``n/a``, ``null`` and ``-`` become
  empty;
- numbers written with a decimal comma or thousands separators are normalised (``1.234,5`` and
  ``1,234.5`` both become ``1234.5``);
- blank rows and exact duplicate rows are dropped.

A file without a header, with a duplicate column, or with a row whose number of fields
differs from the header's is malformed: :class:`~workstack.sdk.files.BadInput` names the line.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from workstack.sdk.files import BadInput

_MISSING = {"", "na", "n/a", "null", "none", "-"}
_SPACES = re.compile(r"\s+")
_NON_WORD = re.compile(r"[^0-9a-z]+")
_EU_NUMBER = re.compile(r"^-?\d{1,3}(\.\d{3})*(,\d+)?$")
_US_NUMBER = re.compile(r"^-?\d{1,3}(,\d{3})*(\.\d+)?$")


def column_name(raw: str) -> str:
    """``" Unit Price (EUR) "`` -> ``unit_price_eur``."""
    return _NON_WORD.sub("_", raw.strip().lower()).strip("_")


def clean_cell(raw: str) -> str:
    """Trim, collapse whitespace, blank out missing markers and normalise numbers."""
    cell = _SPACES.sub(" ", raw.strip())
    if cell.lower() in _MISSING:
        return ""
    if "," in cell and _EU_NUMBER.match(cell) and not _US_NUMBER.match(cell):
        return cell.replace(".", "").replace(",", ".")
    if "," in cell and _US_NUMBER.match(cell):
        return cell.replace(",", "")
    return cell


def process(source: Path, target: Path) -> None:
    """Clean ``source`` into ``target``.

    Raises:
        BadInput: The file has no header, a duplicate column, or a ragged row.
    """
    with source.open(newline="", encoding="utf-8") as handle:
        rows = csv.reader(handle)
        header = next(rows, None)
        if header is None or not any(cell.strip() for cell in header):
            raise BadInput(f"{source.name}: no header row")
        columns = [column_name(cell) for cell in header]
        duplicates = sorted({c for c in columns if columns.count(c) > 1})
        if duplicates:
            raise BadInput(f"{source.name}: duplicate columns {duplicates}")
        seen: set[tuple[str, ...]] = set()
        kept: list[tuple[str, ...]] = []
        for line, row in enumerate(rows, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(columns):
                raise BadInput(
                    f"{source.name} line {line}: {len(row)} fields, the header has {len(columns)}"
                )
            cleaned = tuple(clean_cell(cell) for cell in row)
            if cleaned not in seen:
                seen.add(cleaned)
                kept.append(cleaned)
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(kept)
