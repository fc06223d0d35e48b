"""The root command belongs to the command module; shared options are declared once (issue 13)."""

from __future__ import annotations

import re
from pathlib import Path

import typer

import workstack.main
import workstack.sdk.cli

ROOT = Path(__file__).resolve().parents[2]
SHARED = ("--project", "--stack", "--backend")


def test_the_root_app_is_the_command_modules() -> None:
    roots = [
        name
        for name, value in vars(workstack.sdk.cli).items()
        if isinstance(value, typer.Typer) and name == "app"
    ]
    assert roots == [], "the runtime package registers commands, it does not own the root"
    names = {
        command.name or command.callback.__name__
        for command in workstack.main.app.registered_commands
    }  # type: ignore[union-attr]
    groups = {group.name for group in workstack.main.app.registered_groups}
    assert {"pod", "run", "render", "submit", "version"} <= names
    assert {"files", "queue", "data", "image", "env"} <= groups


def test_options_several_commands_share_are_declared_once() -> None:
    declared: dict[str, list[str]] = {}
    for path in sorted([*ROOT.joinpath("cli").rglob("*.py"), *ROOT.joinpath("sdk").rglob("*.py")]):
        text = path.read_text()
        for option in SHARED:
            if re.search(rf'typer\.Option\(\s*"{option}"', text) or (
                option == "--backend" and re.search(r"^BackendOption = ", text, re.M)
            ):
                declared.setdefault(option, []).append(str(path.relative_to(ROOT)))
    assert declared == {
        "--project": ["cli/options.py"],
        "--stack": ["cli/options.py"],
        "--backend": ["cli/options.py"],
    }
