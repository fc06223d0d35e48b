"""Image builds: cold, unchanged, and after a one-line code change; the size of each image.

Every build is what ``workstack image build --offline`` does: plan the context (the content
hash, with workstack's wheel represented by the fingerprint of its sources), write it (the
wheel built by the build backend once and then taken from its cache, wheels copied from the
wheelhouse), then ``docker build`` with BuildKit on the test engine
(scripts/docker/start-dockerd), from the debootstrap base. Computing a tag alone
(``plan_context``, what rendering does) is timed too.

- cold: every build step runs (``--no-cache``); the base image and the wheelhouse are already
  on the machine, as they are after the first build on it (the network is not measured);
- unchanged: the same workload again; expected: the same tag and no build at all;
- one-line change: one line of the workload's code changed (a new value each repetition);
  goal: the dependency layer is reused and the rebuild takes at most 20% of a cold build.

The machine is small and shared, so each case is repeated and the median is reported.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from tests.integration.images.engine import ROOT, executed_steps, start_engine
from workstack.images import BuildResult, Docker, build_image, generate_context, plan_context

TITLE = "Workload images: cold build, unchanged rebuild, one-line code change"
REPEATS = 5
FIXTURE = ROOT / "tests" / "fixtures" / "workloads" / "word-count"
GOAL = 0.20


def _timed(action: Callable[[], BuildResult]) -> tuple[float, BuildResult]:
    started = time.monotonic()
    result = action()
    return time.monotonic() - started, result


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.0f} MB"


def run() -> str:
    engine = start_engine()
    docker = Docker(
        executable=engine.client, env={"DOCKER_HOST": engine.host, "DOCKER_BUILDKIT": "1"}
    )
    prefix = f"workstack-bench-{uuid.uuid4().hex[:8]}"
    created: list[str] = []  # image IDs, removed at the end
    with tempfile.TemporaryDirectory(prefix="workstack-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        wheelhouse = scratch / "wheelhouse"
        folder = scratch / "word-count"
        shutil.copytree(FIXTURE, folder)
        module = folder / "word_count.py"
        # Unique to this run, so no build below is found in the cache of an earlier run.
        original = module.read_text() + f'\nRUN = "{prefix}"\n'

        def build(*, no_cache: bool = False, source: Path = folder) -> BuildResult:
            context = generate_context(
                source,
                scratch / f"context-{source.name}",
                base_image=engine.base_image,
                offline=True,
                wheelhouse=wheelhouse,
            )
            result = build_image(
                context, docker, repository=f"{prefix}/{context.name}", no_cache=no_cache
            )
            # By ID: a --no-cache build of the same tag leaves the previous image untagged.
            image = docker.inspect_image(result.ref)
            assert image is not None
            created.append(image["Id"])
            return result

        try:
            # The first context of the run fills the wheelhouse: pip on the host, network.
            fill_started = time.monotonic()
            generate_context(
                folder,
                scratch / "context-fill",
                base_image=engine.base_image,
                offline=True,
                wheelhouse=wheelhouse,
            )
            fill_seconds = time.monotonic() - fill_started

            # Computing the tag writes nothing: what `workstack render` does per image.
            planning = []
            for _ in range(20):
                started = time.monotonic()
                plan_context(
                    folder, base_image=engine.base_image, offline=True, wheelhouse=wheelhouse
                )
                planning.append(time.monotonic() - started)

            cold: list[float] = []
            unchanged: list[float] = []
            changed: list[float] = []
            no_builds = 0
            only_code = 0
            for repeat in range(REPEATS):
                module.write_text(original)
                seconds, reference = _timed(lambda: build(no_cache=True))
                cold.append(seconds)

                seconds, again = _timed(build)
                unchanged.append(seconds)
                no_builds += int(not again.built and again.ref == reference.ref)

                # One line of code: the number of words reported, new in every repetition.
                module.write_text(original.replace("TOP = 3", f"TOP = {4 + repeat}"))
                seconds, edited = _timed(build)
                changed.append(seconds)
                only_code += int(executed_steps(edited.output) == ["COPY app/ /app/"])
            module.write_text(original)

            sizes = _sizes(docker, build, engine.base_image)
        finally:
            if created:
                docker.run(["image", "rm", "--force", *sorted(set(created))])

    cold_median = statistics.median(cold)
    unchanged_median = statistics.median(unchanged)
    changed_median = statistics.median(changed)
    change_ratio = changed_median / cold_median
    verdict = "met" if change_ratio <= GOAL else "NOT met"
    rows = [
        "| build | median | runs | ratio to cold |",
        "| --- | --- | --- | --- |",
        f"| cold (`--no-cache`) | {cold_median:.2f} s | {_runs(cold)} | 1 |",
        f"| unchanged | {unchanged_median:.2f} s | {_runs(unchanged)} | "
        f"{unchanged_median / cold_median:.3f} |",
        f"| one-line code change | {changed_median:.2f} s | {_runs(changed)} | "
        f"**{change_ratio:.3f}** |",
    ]
    return "\n".join(
        [
            f"BuildKit ({engine.client}) on the test engine, base `{engine.base_image}` "
            f"(debootstrap bookworm + python3), offline wheelhouse; times include generating "
            f"the context. Median of {REPEATS} repetitions; ratios are of medians.",
            "",
            *rows,
            "",
            f"- Unchanged workload: same tag and no build in {no_builds} of {REPEATS} runs "
            "(only the context is generated and hashed).",
            f"- One-line code change: the code was the only step that ran, the dependency and "
            f"workstack layers came from the cache, in {only_code} of {REPEATS} runs; goal "
            f"(at most {GOAL:.0%} of a cold build): **{verdict}** ({change_ratio:.1%}).",
            f"- Computing the tag without writing anything (`plan_context`, what rendering "
            f"does per image): median {statistics.median(planning) * 1000:.0f} ms of 20.",
            f"- Filling the wheelhouse with pip on the host and building workstack's wheel "
            f"(first context of the run): {fill_seconds:.1f} s; it depends on the network and "
            "is not compared.",
            "",
            "Image sizes (uncompressed, as the engine reports them):",
            "",
            "| image | size | over the base |",
            "| --- | --- | --- |",
            *sizes,
        ]
    )


def _runs(values: list[float]) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


def _sizes(docker: Docker, build: Callable[..., BuildResult], base_image: str) -> list[str]:
    """Size of the base and of each example image: the test workload and workloads/*."""
    base = docker.inspect_image(base_image)
    assert base is not None
    base_size = int(base["Size"])
    rows = [f"| base `{base_image}` | {_megabytes(base_size)} | |"]
    folders = [FIXTURE]
    examples = ROOT / "workloads"
    if examples.is_dir():
        folders += sorted(p for p in examples.iterdir() if p.is_dir())
    for source in folders:
        image = docker.inspect_image(build(source=source).ref)
        assert image is not None
        size = int(image["Size"])
        label = source.relative_to(ROOT).as_posix()
        rows.append(f"| `{label}` | {_megabytes(size)} | {_megabytes(size - base_size)} |")
    return rows
