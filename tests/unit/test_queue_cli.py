"""The queue commands reject bad input before touching the broker, naming what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from workstack.main import app

# A port nothing listens on: a command that tried to connect would fail differently (exit 3).
UNUSED = "amqp://127.0.0.1:9"


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_a_bad_task_file_publishes_nothing_and_names_the_line(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("echo ok\n@stagee two\n")
    code, output = _invoke(
        "queue", "tasker", "--file", str(jobs), "--storage", str(tmp_path), "--broker", UNUSED
    )
    assert code == 2
    assert f"{jobs}:2: directive '@stagee' is not allowed; only '@stage NAME'" in output
    assert "nothing was published" in output


@pytest.mark.parametrize("extra", [[], ["--file", "a.txt", "--from", "m:f"]])
def test_tasker_needs_exactly_one_source(tmp_path: Path, extra: list[str]) -> None:
    code, output = _invoke("queue", "tasker", "--storage", str(tmp_path), *extra)
    assert code == 2
    assert "give either --file" in output


def test_tasker_from_a_callable_that_is_not_there(tmp_path: Path) -> None:
    code, output = _invoke(
        "queue", "tasker", "--from", "no_such_mod:f", "--storage", str(tmp_path), "--broker", UNUSED
    )
    assert code == 2
    assert "entrypoint: function 'no_such_mod:f': module 'no_such_mod' cannot be imported" in output


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--concurrency", "2"], "concurrency: 2 is not allowed; expected at most prefetch (1)"),
        (["--broker", "http://u:secret@h"], "broker_url: 'http://u:***@h' is not allowed"),
        (["--queue", "Q!"], "queue: 'Q!' is not allowed"),
        (["--max-attempts", "0"], "max_attempts: 0 is not allowed"),
        (["--storage", "azure://c/x"], "scheme 'azure'; allowed: s3://, gs://, file://"),
    ],
)
def test_worker_option_errors(tmp_path: Path, options: list[str], message: str) -> None:
    code, output = _invoke("queue", "worker", "--storage", str(tmp_path), *options)
    assert code == 2, output
    assert message in output
    assert "secret" not in output


def test_run_needs_local(tmp_path: Path) -> None:
    code, output = _invoke("run", str(tmp_path))
    assert code == 2
    assert "only `workstack run WORKLOAD_DIR --local` runs here" in output


@pytest.mark.parametrize(
    ("workload", "message"),
    [
        (None, "workload.yaml: (missing) is not allowed; every workload folder needs one"),
        (
            "name: x\npattern: queue-workers\nentrypoint: m:f\nreplicas: 3\n",
            "replicas: 3 is not allowed; allowed keys: name, pattern, entrypoint, command, extras",
        ),
        ("name: X_1\npattern: queue-workers\nentrypoint: m:f\n", "name: 'X_1' is not allowed"),
        (
            "name: x\npattern: cron\nentrypoint: m:f\n",
            "pattern: 'cron' is not allowed; allowed: job-per-file, queue-workers, dask, pipeline",
        ),
        (
            "name: x\npattern: queue-workers\nentrypoint: nope\n",
            "entrypoint: 'nope' is not allowed",
        ),
        (
            "name: x\npattern: queue-workers\nentrypoint: m:f\nextras: [gpu]\n",
            "extras: 'gpu' is not allowed; allowed: queue, dask, s3, gcs",
        ),
        (
            "name: x\npattern: queue-workers\nentrypoint: missing_mod_q:stages\n",
            "module missing_mod_q is not in the workload folder",
        ),
    ],
)
def test_run_local_rejects_bad_workloads(
    tmp_path: Path, workload: str | None, message: str
) -> None:
    if workload is not None:
        (tmp_path / "workload.yaml").write_text(workload)
    code, output = _invoke("run", str(tmp_path), "--local", "--broker", UNUSED)
    assert code == 2, output
    assert message in output


def test_pika_info_lines_are_hidden_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    from workstack.sdk.queue.cli import configure_logging

    monkeypatch.delenv("WORKSTACK_VERBOSE", raising=False)
    configure_logging()
    assert logging.getLogger("pika").getEffectiveLevel() == logging.WARNING
    configure_logging(verbose=True)
    assert logging.getLogger("pika").getEffectiveLevel() == logging.INFO
    monkeypatch.setenv("WORKSTACK_VERBOSE", "1")
    configure_logging()
    assert logging.getLogger("pika").getEffectiveLevel() == logging.INFO
    logging.getLogger("pika").setLevel(logging.NOTSET)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--env", "NOEQUALS"], "--env: 'NOEQUALS' is not allowed; expected NAME=value"),
        (["--env", "WORKSTACK_X=1"], "env: {'WORKSTACK_X': '1'} is not allowed"),
        (["--run-id", "../x"], "run_id: '../x' is not allowed"),
        (["--no-worker-timeout", "-1"], "no_worker_timeout: -1.0 is not allowed"),
    ],
)
def test_tasker_option_errors(tmp_path: Path, options: list[str], message: str) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("echo ok\n")
    code, output = _invoke(
        "queue", "tasker", "-f", str(jobs), "--storage", str(tmp_path), "--broker", UNUSED,
        *options,
    )  # fmt: skip
    assert code == 2, output
    assert message in output


def test_no_worker_option_sets_an_ack_timeout_rabbitmq_would_ignore(tmp_path: Path) -> None:
    """RabbitMQ 4.2 ignores a per-consumer x-consumer-timeout on quorum queues (broker.py,
    QUORUM_CONSUMER_ARGUMENTS): the ack timeout is rabbitmqConsumerTimeoutMinutes alone."""
    code, output = _invoke(
        "queue", "worker", "--storage", str(tmp_path), "--consumer-timeout", "60"
    )
    assert code == 2
    assert "No such option: --consumer-timeout" in output
