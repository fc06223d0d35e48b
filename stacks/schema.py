"""``Pulumi.yaml``, generated from the settings models, so the two cannot drift.

``python -m stacks.schema --write`` (``make schema``) rewrites the file; a test fails when the
committed file differs from what this module generates.

Rules of the Pulumi CLI this follows (pulumi/pulumi ``pkg/workspace/config.go``, ``mergeConfig``
and ``validateStackConfigValues``, and ``sdk/go/common/workspace/project.go``):

- A declared project key with neither ``default`` nor ``value`` is required: ``pulumi up``
  stops before the program runs ("Stack 'dev' is missing configuration value 'x'"). So every
  declared key has a default; optional values use an "unset" default (``""`` or ``0``).
- A typed ``secret: true`` key must be set encrypted ("... must be encrypted as it's secret"),
  and a default is written into the stack's config as plaintext, so a secret key can have
  neither a default (it would fail whenever unset) nor be declared without one (it would be
  required everywhere). Secret keys are therefore not declared; the program refuses them in
  plaintext itself (see :meth:`Settings.from_stack`).
- Stack files may set keys that are not declared; the program rejects unknown ones.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from stacks.config import PROJECT, project_keys

__all__ = ["pulumi_yaml", "secret_keys"]

_HEADER: dict[str, Any] = {
    "name": PROJECT,
    "description": "Data-science workloads on Kubernetes (minikube, GKE or EKS), from Python.",
    "runtime": {"name": "python", "options": {"toolchain": "pip", "virtualenv": ".venv"}},
    "main": "stacks/",
    "stackConfigDir": "stacks",
}


class _Folded(str):
    """A long string written as a folded block (``>-``), the way people write descriptions."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    _Folded, lambda dumper, text: dumper.represent_scalar("tag:yaml.org,2002:str", text, style=">")
)


def secret_keys() -> list[str]:
    """Stack keys that must be set with ``pulumi config set --secret`` (not declared)."""
    return [key.name for key in project_keys() if key.secret]


def pulumi_yaml() -> str:
    """The text of ``Pulumi.yaml``: the project, and a declaration of every stack key."""
    config: dict[str, Any] = {}
    for key in project_keys():
        if key.secret:
            continue
        declaration: dict[str, Any] = {"type": key.type}
        if key.type == "array":
            declaration["items"] = {"type": "string"}
        declaration["description"] = _Folded(key.description)
        declaration["default"] = key.default
        config[key.name] = declaration
    secrets = ", ".join(secret_keys())
    head = (
        "# Generated from the settings models by `make schema`; edit the\n"
        "# models (their fields, defaults and docstrings), not this file. Every key is set as\n"
        "# `workstack:<key>` in stacks/Pulumi.<stack>.yaml. Secret keys are not declared here\n"
        "# (a declared secret would be required, or refused with a default, by the Pulumi CLI);\n"
        f"# set them with `pulumi config set --secret`: {secrets}.\n"
    )
    body = yaml.safe_dump(_HEADER, sort_keys=False)
    config_text = yaml.dump({"config": config}, Dumper=_Dumper, sort_keys=False, width=96)
    return head + body + config_text


def main(argv: list[str]) -> int:
    """Print Pulumi.yaml, or with ``--write`` rewrite it next to the stacks folder."""
    text = pulumi_yaml()
    if argv == ["--write"]:
        path = Path(__file__).resolve().parent.parent / "Pulumi.yaml"
        path.write_text(text)
        print(f"wrote {path}")
        return 0
    if argv:
        print("usage: python -m stacks.schema [--write]", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
