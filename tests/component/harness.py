"""Helpers to run the stack program offline with a stack file, optionally changed."""

from __future__ import annotations

from pathlib import Path

import yaml

from workstack.offline import Deployment, run_program
from workstack.project import PulumiProject, StackSettings, go_json

REMOVE = object()


def _key(name: str) -> str:
    """``gcp__project`` means ``gcp:project``; a bare name means ``workstack:<name>``."""
    return name.replace("__", ":") if "__" in name else f"workstack:{name}"


def deploy(
    project: PulumiProject,
    stack: str,
    *,
    secrets: dict[str, str] | None = None,
    **changes: object,
) -> Deployment:
    """Run the program for ``stack`` with config keys changed; ``REMOVE`` deletes a key and
    ``secrets`` sets keys the way ``pulumi config set --secret`` would."""
    base = project.read_stack(stack)
    values = dict(base.values)
    secret_keys = list(base.secret_keys)
    for name, value in changes.items():
        if value is REMOVE:
            values.pop(_key(name), None)
        else:
            values[_key(name)] = value if isinstance(value, str) else str(value).lower()
    for name, value in (secrets or {}).items():
        values[_key(name)] = value
        secret_keys.append(_key(name))
    return run_program(project, stack, StackSettings(values, secret_keys))


OFFDEFAULTS = Path(__file__).resolve().parents[1] / "fixtures" / "offdefaults"


def offdefaults_config(cloud: str) -> tuple[dict[str, str], list[str]]:
    """The off-defaults fixture of ``cloud``, its values as the engine hands them over
    (``secure:`` values "decrypted": taken as written) and its secret keys."""
    document = yaml.safe_load((OFFDEFAULTS / f"Pulumi.offdefaults-{cloud}.yaml").read_text())
    values: dict[str, str] = {}
    secrets: list[str] = []
    for key, value in document["config"].items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            values[key] = value["secure"]
            secrets.append(key)
        else:
            values[key] = value if isinstance(value, str) else go_json(value)
    return values, secrets


def with_project_defaults(
    project: PulumiProject, values: dict[str, str], secrets: list[str]
) -> StackSettings:
    """``values`` with every declared key's default merged in, as the CLI hands them over."""
    defaults = {
        f"{project.name}:{key}": declared.default
        if isinstance(declared.default, str)
        else go_json(declared.default)
        for key, declared in project.schema.items()
    }
    return StackSettings(defaults | values, secrets)


def offdefaults_settings(project: PulumiProject, cloud: str) -> StackSettings:
    """The off-defaults fixture of ``cloud`` with the project's defaults merged in."""
    return with_project_defaults(project, *offdefaults_config(cloud))
