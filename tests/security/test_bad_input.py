"""Bad input as a new user would give it: every case is refused cleanly, none is accepted.

The cases are the table in docs/security.md ("Bad input"): each is run here, and a clean
refusal means exit status 2 (or, for a component's arguments, a ``SpecError`` before any
resource), a message naming the key or option, the value and what is allowed, and no
traceback. ``python -m tests.security.test_bad_input`` rewrites the table in the docs from
these cases; a test keeps it current.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

import stacks.config
from workstack.components.manifests.jobs import files_args, manifest_text
from workstack.components.manifests.validation import SpecError
from workstack.main import app

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "security.md"
BEGIN, END = "<!-- bad-input table: begin -->", "<!-- bad-input table: end -->"
runner = CliRunner()


@dataclass(frozen=True)
class Outcome:
    status: int
    output: str


@dataclass(frozen=True)
class Case:
    """One bad input and what its refusal must say.

    Attributes:
        name: What was tried.
        group: stack file, command line or component argument.
        run: Does it in a scratch folder; returns the exit status and everything printed.
        says: Fragments the message must hold: the key or option, the value, what is allowed.
        before: What happened before this change (``refused`` when it already was).
    """

    name: str
    group: str
    run: Callable[[Path], Outcome]
    says: tuple[str, ...]
    before: str


def _project(tmp: Path, stack: str, edit: Callable[[str], str]) -> Path:
    """A copy of the project whose stack file ``stack`` is ``edit``-ed (bytes: see _raw)."""
    project = tmp / "project"
    project.mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", project / "Pulumi.yaml")
    shutil.copytree(ROOT / "stacks", project / "stacks")
    (project / "workloads").symlink_to(ROOT / "workloads")
    path = project / "stacks" / f"Pulumi.{stack}.yaml"
    path.write_text(edit(path.read_text()))
    return project


def _render(stack: str, edit: Callable[[str], str], *extra: str) -> Callable[[Path], Outcome]:
    def run(tmp: Path) -> Outcome:
        project = _project(tmp, stack, edit)
        return _cli(["render", "--stack", stack, "--project", str(project), *extra])

    return run


def _raw(stack: str, content: bytes) -> Callable[[Path], Outcome]:
    def run(tmp: Path) -> Outcome:
        project = _project(tmp, stack, lambda text: text)
        (project / "stacks" / f"Pulumi.{stack}.yaml").write_bytes(content)
        return _cli(["render", "--stack", stack, "--project", str(project)])

    return run


def _cli(args: list[str]) -> Outcome:
    result = runner.invoke(app, args)
    text = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        text += "Traceback\n" + "".join(traceback.format_exception(result.exception))
    return Outcome(result.exit_code, text)


def _add(*lines: str) -> Callable[[str], str]:
    return lambda text: text + "".join(f"  {line}\n" for line in lines)


def _replace(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new)

    return edit


def _spec(call: Callable[[], object]) -> Callable[[Path], Outcome]:
    """A component argument: refused with a SpecError (the CLI's exit 2) before anything."""

    def run(_: Path) -> Outcome:
        try:
            call()
        except SpecError as error:
            return Outcome(2, str(error))
        return Outcome(0, "accepted")

    return run


def _alias_bomb() -> bytes:
    lines = ["config:", "  a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"  a{level}: &a{level} [{refs}]")
    return ("\n".join(lines) + "\n").encode()


def _same_name(tmp: Path) -> Outcome:
    """Two workload folders whose workload.yaml declare the same name."""
    folder = tmp / "workloads"
    for copy in ("clean-a", "clean-b"):
        shutil.copytree(ROOT / "workloads" / "csv-clean", folder / copy)
    project = _project(
        tmp,
        "minikube",
        _replace("[csv-clean, dask-bench, ml-basic, simulations]", "[clean-a, clean-b]"),
    )
    saved = stacks.config.WORKLOADS_DIR
    stacks.config.WORKLOADS_DIR = folder
    try:
        return _cli(["render", "--stack", "minikube", "--project", str(project)])
    finally:
        stacks.config.WORKLOADS_DIR = saved


def _broken_pipeline(tmp: Path) -> Outcome:
    folder = tmp / "workloads"
    shutil.copytree(ROOT / "workloads" / "ml-basic", folder / "ml-basic")
    ml = folder / "ml-basic" / "ml.py"
    ml.write_text(ml.read_text().replace("def build(", "def build_renamed("))
    project = _project(tmp, "minikube", lambda text: text)
    saved = stacks.config.WORKLOADS_DIR
    stacks.config.WORKLOADS_DIR = folder
    for name in ("csv-clean", "dask-bench", "simulations"):
        (folder / name).symlink_to(ROOT / "workloads" / name)
    try:
        return _cli(["render", "--stack", "minikube", "--project", str(project)])
    finally:
        stacks.config.WORKLOADS_DIR = saved


def _run(*args: str) -> Callable[[Path], Outcome]:
    def run(tmp: Path) -> Outcome:
        return _cli(["run", *[a.replace("{tmp}", str(tmp)) for a in args]])

    return run


def _exits_at_import(tmp: Path) -> Outcome:
    workload = tmp / "word-count"
    shutil.copytree(ROOT / "tests" / "fixtures" / "workloads" / "word-count", workload)
    module = workload / "word_count.py"
    module.write_text(
        module.read_text().replace("import re\n", "import re\nimport sys\nsys.exit(7)\n", 1)
    )
    sys.modules.pop("word_count", None)
    try:
        return _cli(["run", str(workload), "--local", "--out", str(tmp / "out")])
    finally:
        sys.modules.pop("word_count", None)


def _out_is_file(tmp: Path) -> Outcome:
    (tmp / "a-file").write_text("")
    return _cli(
        ["render", "--stack", "minikube", "--project", str(ROOT), "--out", str(tmp / "a-file")]
    )


def _run_out_is_file(tmp: Path) -> Outcome:
    (tmp / "a-file").write_text("")
    return _cli(
        ["run", str(ROOT / "workloads" / "csv-clean"), "--local", "--out", str(tmp / "a-file")]
    )


_FILES = {"input_url": "/data/in", "output_url": "/data/out", "shards": 1}
CASES = [
    # -- stack files ------------------------------------------------------------------------
    Case(
        "plaintext bucketSecretAccessKey (declared secret)",
        "stack file",
        _render(
            "minikube",
            _add(
                "workstack:storage: bucket",
                "workstack:bucketEndpoint: http://minio.minio:9000",
                "workstack:bucketName: data",
                "workstack:bucketSecretAccessKey: plaintext-key",
            ),
        ),
        ("workstack:bucketSecretAccessKey", "(plaintext)", "pulumi config set --secret"),
        "refused",
    ),
    Case(
        "namespace: kube-system",
        "stack file",
        _render("minikube", _replace("namespace: workstack", "namespace: kube-system")),
        ("workstack:namespace", "'kube-system'", "a namespace of the stack's own"),
        "accepted",
    ),
    Case(
        "namespace: default",
        "stack file",
        _render("minikube", _replace("namespace: workstack", "namespace: default")),
        ("workstack:namespace", "'default'", "a namespace of the stack's own"),
        "accepted",
    ),
    Case(
        "a workload outside workloads/ (../x)",
        "stack file",
        _render("minikube", _replace("[csv-clean,", "[../x, csv-clean,")),
        ("workstack:workloads", "'../x'", "known workloads:"),
        "refused",
    ),
    Case(
        "a workload by absolute path",
        "stack file",
        _render("minikube", _replace("[csv-clean,", "[/etc, csv-clean,")),
        ("workstack:workloads", "'/etc'", "known workloads:"),
        "refused",
    ),
    Case(
        "typo in a provider key (gcp:zon)",
        "stack file",
        _render("gke", _replace("gcp:zone:", "gcp:zon:")),
        ("gcp:zon", "'europe-west1-b'", "did you mean gcp:zone?"),
        "accepted (a regional cluster)",
    ),
    Case(
        "typo in a provider key (aws:regoin)",
        "stack file",
        _render("eks", _add("aws:regoin: eu-west-1")),
        ("aws:regoin", "'eu-west-1'", "did you mean aws:region?"),
        "accepted",
    ),
    Case(
        "typo in the project prefix (workstak:nodeMax)",
        "stack file",
        _render("gke", _add("workstak:nodeMax: 9")),
        ("workstak:nodeMax", "'9'", "did you mean workstack:nodeMax?"),
        "accepted (ignored)",
    ),
    Case(
        "typo in a key (workstack:nodeMaxx)",
        "stack file",
        _render("gke", _add("workstack:nodeMaxx: 9")),
        ("workstack:nodeMaxx", "'9'", "did you mean workstack:nodeMax?"),
        "refused, no suggestion",
    ),
    Case(
        "a key workstack no longer reads (queueConsumerTimeout)",
        "stack file",
        _render("minikube", _add("workstack:queueConsumerTimeout: 7200")),
        ("workstack:queueConsumerTimeout", "'7200'", "rabbitmqConsumerTimeoutMinutes"),
        "accepted (the worker's consumer argument, ignored by RabbitMQ 4.2)",
    ),
    Case(
        "a key given twice",
        "stack file",
        _render("gke", _add("workstack:nodeMax: 3", "workstack:nodeMax: 5")),
        ("Pulumi.gke.yaml", "line", "'workstack:nodeMax' is defined twice"),
        "accepted (the last won)",
    ),
    Case(
        "a kubeconfig path that does not exist",
        "stack file",
        _render("minikube", _add("workstack:kubeconfig: /nowhere/kubeconfig")),
        ("workstack:kubeconfig", "'/nowhere/kubeconfig'", "no such file"),
        "accepted",
    ),
    Case(
        "a YAML syntax error",
        "stack file",
        _render("gke", _add("workstack:nodeMax: [3")),
        ("Pulumi.gke.yaml", "line 14", "expected valid YAML"),
        "traceback",
    ),
    Case(
        "a binary stack file",
        "stack file",
        _raw("minikube", bytes(range(256)) * 4),
        ("Pulumi.minikube.yaml", "byte", "expected UTF-8 text"),
        "traceback",
    ),
    Case(
        "a YAML alias bomb (422 bytes)",
        "stack file",
        _raw("minikube", _alias_bomb()),
        ("Pulumi.minikube.yaml", "(aliases)", "at most 100000 nodes"),
        "14 MB message, 270 MB memory",
    ),
    Case(
        "a stack file over 1 MiB",
        "stack file",
        _raw("minikube", b"config:\n" + b"# padding\n" * 120_000),
        ("Pulumi.minikube.yaml", "bytes", "at most 1048576 bytes"),
        "read whole",
    ),
    Case(
        "several bad keys at once",
        "stack file",
        _render("gke", _add("workstack:daskThreads: 0", "workstack:queueWorkers: 0")),
        ("workstack:daskThreads: 0", "workstack:queueWorkers: 0", "an integer between 1 and"),
        "refused",
    ),
    Case(
        "a workload listed twice",
        "stack file",
        _render("minikube", _replace("[csv-clean,", "[csv-clean, csv-clean,")),
        ("workstack:workloads", "'csv-clean'", "listed twice"),
        "refused",
    ),
    Case(
        "two folders declaring one workload name",
        "stack file",
        _same_name,
        ("workstack:workloads", "['clean-a', 'clean-b']", "declare `name: csv-clean`"),
        "'listed twice' (wrong)",
    ),
    Case(
        "a list shown in a message",
        "stack file",
        _render("eks", _add("workstack:eksSubnetIds: [subnet-1]")),
        ("workstack:eksSubnetIds", "['subnet-1']", "needs workstack:eksVpcId"),
        "shown as a Python tuple",
    ),
    Case(
        "bucketEndpoint port out of range",
        "stack file",
        _render(
            "minikube",
            _add(
                "workstack:storage: bucket",
                "workstack:bucketEndpoint: http://minio.minio:99999",
                "workstack:bucketName: data",
            ),
        ),
        ("workstack:bucketEndpoint", "'http://minio.minio:99999'", "a port between 1 and 65535"),
        "accepted",
    ),
    Case(
        "a pipeline whose code fails",
        "stack file",
        _broken_pipeline,
        ("workstack:workloads", "'ml-basic'", "ml:build"),
        "24 resources registered first",
    ),
    # -- command line -------------------------------------------------------------------------
    Case(
        "render --out naming a file",
        "command line",
        _out_is_file,
        ("--out", "a-file", "expected a folder"),
        "traceback",
    ),
    Case(
        "run --out naming a file",
        "command line",
        _run_out_is_file,
        ("--out", "a-file", "expected a folder"),
        "every file failed, exit 1",
    ),
    Case(
        "run --input of a missing folder",
        "command line",
        _run(
            str(ROOT / "workloads" / "csv-clean"),
            "--local",
            "--input",
            "{tmp}/missing",
            "--out",
            "{tmp}/out",
        ),
        ("--input", "missing'", "expected an existing folder"),
        "exit 0, '0 files'",
    ),
    Case(
        "a workload module that calls sys.exit() at import",
        "command line",
        _exits_at_import,
        ("word_count:count_words", "sys.exit(7)", "must only define functions"),
        "exit 7, no message",
    ),
    Case(
        "run --broker with a port out of range",
        "command line",
        _run(
            str(ROOT / "workloads" / "simulations"),
            "--local",
            "--broker",
            "amqp://127.0.0.1:99999",
            "--out",
            "{tmp}/out",
        ),
        ("--broker", "'amqp://127.0.0.1:99999'", "Port out of range"),
        "named broker_url",
    ),
    # -- component arguments ------------------------------------------------------------------
    Case(
        "function='rm -rf /'",
        "component argument",
        _spec(lambda: files_args(**_FILES, function="rm -rf /")),
        ("function", "'rm -rf /'", "expected module:function"),
        "accepted; failed in every pod",
    ),
    Case(
        "a command without {input}",
        "component argument",
        _spec(lambda: files_args(**_FILES, command="python x.py --out {output}")),
        ("command", "--out {output}'", "it must contain {input}"),
        "accepted; failed in every pod",
    ),
    Case(
        "a suffix without a dot",
        "component argument",
        _spec(lambda: files_args(**_FILES, function="m:f", suffix="parquet")),
        ("suffix", "'parquet'", "expected an extension such as .parquet"),
        "accepted; failed in every pod",
    ),
    Case(
        "a file list with ../",
        "component argument",
        _spec(lambda: manifest_text(["a.csv", "../etc/passwd"])),
        ("files", "'../etc/passwd'", "relative to the input folder"),
        "accepted; failed in every pod",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_cleanly(case: Case, tmp_path: Path) -> None:
    outcome = case.run(tmp_path)
    assert outcome.status == 2, f"exit {outcome.status}:\n{outcome.output[-2000:]}"
    assert "Traceback" not in outcome.output, outcome.output[-3000:]
    for fragment in case.says:
        assert fragment in outcome.output, f"{fragment!r} not in:\n{outcome.output[-2000:]}"
    assert len(outcome.output) < 20_000, "long values are echoed shortened"


def table() -> str:
    """The docs' table: every case, what happened before, and the counts."""
    rows = ["| bad input | where | before | now |", "| --- | --- | --- | --- |"]
    for case in CASES:
        now = "refused, SpecError" if case.group == "component argument" else "refused, exit 2"
        rows.append(f"| {case.name} | {case.group} | {case.before} | {now} |")
    fixed = sum(case.before != "refused" for case in CASES)
    rows += [
        "",
        f"Tried: {len(CASES)}. Refused cleanly (exit 2, key or option, value, what is "
        f"allowed, no traceback): {len(CASES)}. Wrongly accepted: 0. Fixed by this change: "
        f"{fixed}; already refused and kept under test: {len(CASES) - fixed}.",
    ]
    return "\n".join(rows)


def test_the_docs_table_is_these_cases() -> None:
    text = DOCS.read_text()
    assert BEGIN in text and END in text, f"{DOCS} lacks the table markers"  # noqa: PT018
    current = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert current == table(), "run `python -m tests.security.test_bad_input` to rewrite it"


if __name__ == "__main__":
    text = DOCS.read_text()
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    DOCS.write_text(f"{head}{BEGIN}\n{table()}\n{END}{tail}")
