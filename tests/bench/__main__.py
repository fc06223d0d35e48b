"""Run benchmarks and rewrite their sections of docs/benchmarks.md.

    python -m tests.bench              # every tests/bench/bench_*.py
    python -m tests.bench queue images # only bench_queue.py and bench_images.py

Each ``bench_<name>.py`` defines ``TITLE`` and ``run() -> str``, which measures in one run and
returns a Markdown section (ratios, not absolute times, are what the goals are about).
Sections of benchmarks not run this time are kept as they are.
"""

from __future__ import annotations

import importlib
import platform
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOC = HERE.parents[1] / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Measured with `make bench` (`python -m tests.bench [name...]`). Each section compares
ratios measured in one run on the same machine; absolute times vary between machines and
are shown only for context.
"""
_SECTION = re.compile(r"<!-- bench:(?P<name>[\w-]+) -->\n(?P<body>.*?)<!-- /bench -->", re.S)


def _existing() -> dict[str, str]:
    if not DOC.exists():
        return {}
    return {m["name"]: m["body"] for m in _SECTION.finditer(DOC.read_text())}


def main(names: list[str]) -> None:
    available = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    unknown = sorted(set(names) - set(available))
    if unknown:
        sys.exit(f"unknown benchmark(s) {unknown}; available: {', '.join(available)}")
    sections = _existing()
    for name in names or available:
        module = importlib.import_module(f"tests.bench.bench_{name}")
        print(f"running {name}: {module.TITLE}", flush=True)
        machine = f"{platform.machine()}, Python {platform.python_version()}"
        stamp = f"_{datetime.now(UTC):%Y-%m-%d}, {machine}_"
        sections[name] = f"## {module.TITLE}\n\n{stamp}\n\n{module.run().strip()}\n\n"
    body = "".join(
        f"<!-- bench:{n} -->\n{sections[n]}<!-- /bench -->\n\n" for n in sorted(sections)
    )
    DOC.write_text(f"{HEADER}\n{body}".rstrip() + "\n")
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main(sys.argv[1:])
