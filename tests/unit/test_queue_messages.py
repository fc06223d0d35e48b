"""Tasks and the JSON messages that carry them: valid input round-trips, bad input is named."""

from __future__ import annotations

import json

import pytest

from workstack.sdk.queue import MessageError, QueueError, Stage, Task
from workstack.sdk.queue.messages import (
    MAX_MESSAGE_BYTES,
    Completion,
    StopMessage,
    TaskMessage,
    check_unique_ids,
    decode_message,
    decode_note,
    encode_results,
    encode_stop,
    encode_task,
)


def test_command_and_call_tasks() -> None:
    shell = Task(command="python simulate.py --seed 1")
    argv = Task(command=["python", "simulate.py"])
    call = Task(call="sims.metrics:summarize", args=[1, "a"], kwargs={"k": [1.5, None]})
    assert shell.label == "python simulate.py --seed 1"
    assert argv.command == ("python", "simulate.py")
    assert call.label == "sims.metrics:summarize()"


def test_default_id_is_a_stable_hash_of_the_content() -> None:
    a = Task(command="echo 1")
    assert a.id == Task(command="echo 1").id
    assert a.id != Task(command="echo 2").id
    assert len(a.id) == 20
    assert Task(command="echo 1", id="my-task").id == "my-task"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "exactly one of command"),
        ({"command": "x", "call": "m:f"}, "exactly one of command"),
        ({"command": ""}, "command: '' is not allowed"),
        ({"command": []}, "a non-empty list of strings"),
        ({"command": ["a", 1]}, "a non-empty list of strings"),
        ({"command": "x", "args": [1]}, "not allowed with command"),
        (
            {"call": "no_colon"},
            "call: 'no_colon' is not allowed; expected 'package.module:function'",
        ),
        ({"call": "a.b:c-d"}, "expected 'package.module:function'"),
        ({"call": "m:f", "args": "abc"}, "args: 'abc' is not allowed"),
        ({"call": "m:f", "args": [object()]}, "args:"),
        ({"call": "m:f", "kwargs": {1: 2}}, "kwargs: {1: 2} is not allowed"),
        ({"call": "m:f", "args": [float("nan")]}, "expected JSON values"),
        ({"command": "x", "timeout": 0}, "timeout: 0 is not allowed"),
        ({"call": "m:f", "env": {"A": "1"}}, "env/shell/on_error: only allowed with command"),
        ({"command": "x", "outputs": ["../up"]}, "outputs: '../up' is not allowed"),
        ({"command": "x", "outputs": "a.txt"}, "outputs: 'a.txt' is not allowed"),
        ({"command": "x", "env": {"WORKSTACK_TASK_ID": "1"}}, "WORKSTACK_* variables are set"),
        ({"command": "x", "on_error": "ignore"}, "on_error: 'ignore' is not allowed"),
        ({"command": ["a"], "shell": "bash"}, "shell: only allowed with a command given as one"),
        ({"command": "x", "shell": "zsh"}, "shell: 'zsh' is not allowed"),
        (
            {
                "call": "m:f",
                "args": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
            },
            "nested more than 32",
        ),
        ({"command": "x", "id": "../up"}, "id: '../up' is not allowed"),
        ({"command": "x", "id": ".hidden"}, "id: '.hidden' is not allowed"),
        ({"command": "x", "id": "a/b"}, "id: 'a/b' is not allowed"),
    ],
)
def test_bad_tasks_name_the_field(fields: dict[str, object], message: str) -> None:
    with pytest.raises(QueueError) as caught:
        Task(**fields)  # type: ignore[arg-type]
    assert message in str(caught.value)


def test_stage_validation() -> None:
    with pytest.raises(QueueError, match="stage name: 'a b' is not allowed"):
        Stage(name="a b", tasks=[Task(command="x")])
    with pytest.raises(QueueError, match="stage 'empty': no tasks"):
        Stage(name="empty", tasks=[])
    with pytest.raises(QueueError, match="expected Task"):
        Stage(name="s", tasks=["echo"])  # type: ignore[list-item]


def test_ids_must_be_unique_within_a_run() -> None:
    one = Stage(name="one", tasks=[Task(command="echo x")])
    two = Stage(name="two", tasks=[Task(command="echo y"), Task(command="echo x")])
    with pytest.raises(
        QueueError, match=r"used twice \(stage 'one' task 1 and stage 'two' task 2\)"
    ):
        check_unique_ids([one, two])


def test_task_message_round_trip() -> None:
    task = Task(call="m.n:f", args=[1], kwargs={"a": "b"}, id="t-1")
    decoded = decode_message(encode_task(task, stage="part2", run="r1"))
    assert decoded == TaskMessage(task=task, stage="part2", run="r1")
    command = Task(command="sleep 1", timeout=30)
    assert decode_message(encode_task(command, stage="s", run="r")).task == command


def test_stop_message_round_trip() -> None:
    assert decode_message(encode_stop(run="r", sent_at=12.5)) == StopMessage(run="r", sent_at=12.5)


def _body(**fields: object) -> bytes:
    message = {"v": 1, "kind": "task", "id": "t", "stage": "s", "run": "r", "command": "x"}
    message.update(fields)
    return json.dumps({k: v for k, v in message.items() if v is not None}).encode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff\xfe", "not valid UTF-8"),
        (b"not json", "not valid JSON"),
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b'{"v": 1, "kind": "stop", "run": "r", "sent_at": ' + b"9" * 5000 + b"}", "4300 digits"),
        (b'{"v": 1, "kind": "stop", "run": "r", "sent_at": NaN}', "NaN and Infinity"),
        (b'{"v": 1, "kind": "stop", "run": "r", "sent_at": 1e999}', "numbers must be finite"),
        (b'{"v": 1, "kind": "stop", "run": "../r", "sent_at": 1}', "field run: '../r'"),
        (b"x" * (1 << 20 + 1), "too large"),
        (b"[1, 2]", "is a JSON list; expected a JSON object"),
        (b'{"kind": "task"}', "field v: None is not allowed; expected 1"),
        (_body(v=2), "field v: 2 is not allowed"),
        (_body(kind="other"), "field kind: 'other' is not allowed; expected 'task' or 'stop'"),
        (_body(id=None), "field id: (missing) is not allowed"),
        (_body(id=5), "field id: 5 is not allowed"),
        (_body(id="a/b"), "field id: 'a/b' is not allowed"),
        (_body(stage=None), "field stage: (missing)"),
        (_body(run=None), "field run: (missing)"),
        (_body(extra=1), "unknown field(s) ['extra']"),
        (_body(command=None), "exactly one of command"),
        (_body(command=None, call="bad path"), "call: 'bad path' is not allowed"),
        (json.dumps({"v": 1, "kind": "stop", "run": "r"}).encode(), "field sent_at: (missing)"),
        (b'{"v": 1, "kind": "task", "id": "' + b"x" * MAX_MESSAGE_BYTES + b'"}', "too large"),
    ],
)
def test_malformed_messages_say_why(body: bytes, message: str) -> None:
    with pytest.raises(MessageError) as caught:
        decode_message(body)
    assert message in str(caught.value)


def test_completion_notes_and_dead_letters_for_the_tasker() -> None:
    done = [
        Completion(id="a", stage="s", run="r", status="done", attempt=1),
        Completion(id="b", stage="s", run="r", status="done", attempt=2, cached=True),
    ]
    assert decode_note(encode_results("w1", done), {}) == done
    task_body = encode_task(Task(command="false", id="c"), stage="s", run="r")
    ours = decode_note(
        task_body,
        {"x-workstack-reason": "failed", "x-workstack-error": "exit 1", "x-workstack-attempts": 3},
    )
    assert ours == [
        Completion(id="c", stage="s", run="r", status="failed", attempt=3, error="exit 1")
    ]
    theirs = decode_note(task_body, {"x-first-death-reason": b"delivery_limit"})
    assert theirs[0].status == "failed"
    assert theirs[0].error == "dead-lettered by the broker: delivery_limit"
    with pytest.raises(MessageError, match="not allowed on the results queue"):
        decode_note(task_body, {})
    with pytest.raises(MessageError, match="not valid JSON"):
        decode_note(b"junk", {"x-workstack-reason": "malformed"})
