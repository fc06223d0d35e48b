"""The Pulumi CLI's rules for a project's ``config:`` block, applied offline word for word.

Each case is a port of the engine's own tests (pulumi/pulumi v3.259.0,
``pkg/workspace/config_project_test.go``) or of a rule in ``pkg/workspace/config.go`` and
``sdk/go/common/workspace/project.go``; the messages are the engine's. Before this, reading a
stack mapped a missing key to None, took any value for a typed key and let the program decide:
the renderer ran programs the CLI would never start.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from workstack.main import app
from workstack.project import (
    ConfigValue,
    ProjectError,
    StackConfigError,
    load_project,
    merge_stack_config,
)

ROOT = Path(__file__).resolve().parents[2]
OLD_PROJECT = ROOT / "tests" / "fixtures" / "pulumi-yaml-9db4ab1" / "Pulumi.yaml"


def _project(tmp_path: Path, config: str, stack: str = "", name: str = "test") -> Path:
    (tmp_path / "Pulumi.yaml").write_text(f"name: {name}\nruntime: python\n{config}")
    (tmp_path / "Pulumi.dev.yaml").write_text(stack or "config: {}\n")
    return tmp_path


def _read(tmp_path: Path, config: str, stack: str = "") -> dict[str, str]:
    return load_project(_project(tmp_path, config, stack)).read_stack("dev").values


def _refused(tmp_path: Path, config: str, stack: str = "") -> str:
    with pytest.raises(StackConfigError) as caught:
        _read(tmp_path, config, stack)
    assert str(caught.value) == f"validating stack config: {caught.value.engine_message}"
    return caught.value.engine_message


def test_a_declared_key_without_default_is_required(tmp_path: Path) -> None:
    """TestStackConfigErrorsWhenMissingStackValueForConfigTypeWithNoDefault."""
    config = "config:\n  values:\n    type: array\n    items:\n      type: string\n"
    assert _refused(tmp_path, config) == "Stack 'dev' is missing configuration value 'values'"


def test_an_untyped_declaration_is_required_too(tmp_path: Path) -> None:
    """config.go L316-325: the missing-key check does not look at ``type``."""
    config = "config:\n  token:\n    description: no type, no default\n"
    assert _refused(tmp_path, config) == "Stack 'dev' is missing configuration value 'token'"


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (["values", "another"], "values 'another' and 'values'"),
        (["world", "values", "hello"], "values 'hello', 'values' and 'world'"),
    ],
)
def test_missing_keys_are_reported_together_and_sorted(
    tmp_path: Path, keys: list[str], message: str
) -> None:
    """TestStackConfigErrorsWhenMissing{Two,Multiple}StackValueForConfigTypeWithNoDefault."""
    config = "config:\n" + "".join(f"  {key}:\n    type: string\n" for key in keys)
    assert _refused(tmp_path, config) == f"Stack 'dev' is missing configuration {message}"


def test_keys_of_other_namespaces_are_never_missing(tmp_path: Path) -> None:
    """config.go L319: only keys in the project's namespace count as missing."""
    config = "config:\n  aws:region:\n    value: eu-west-1\n"
    assert _read(tmp_path, config)["aws:region"] == "eu-west-1"


def test_a_plaintext_value_for_a_secret_key_is_refused(tmp_path: Path) -> None:
    """TestStackConfigSecretIsCorrectlyValidated."""
    config = "config:\n  importantNumber:\n    type: integer\n    secret: true\n"
    plain = "config:\n  test:importantNumber: 20\n"
    assert _refused(tmp_path, config, plain) == (
        "Stack 'dev' with configuration key 'importantNumber' must be encrypted as it's secret"
    )
    secure = "config:\n  test:importantNumber:\n    secure: AAABAMc2Vj==\n"
    settings = load_project(_project(tmp_path, config, secure)).read_stack("dev")
    assert settings.secret_keys == ["test:importantNumber"]
    assert settings.values["test:importantNumber"] == "[secret]"


def test_a_typed_secret_with_a_plain_default_fails_whenever_the_stack_leaves_it_unset(
    tmp_path: Path,
) -> None:
    """config.go: mergeConfig writes the default as plaintext, then the secret check runs."""
    config = "config:\n  token:\n    type: string\n    secret: true\n    default: ''\n"
    assert _refused(tmp_path, config) == (
        "Stack 'dev' with configuration key 'token' must be encrypted as it's secret"
    )


def test_an_untyped_secret_is_not_enforced(tmp_path: Path) -> None:
    """config.go L101: only explicitly typed keys are validated."""
    config = "config:\n  token:\n    secret: true\n    default: plain\n"
    assert _read(tmp_path, config)["test:token"] == "plain"


@pytest.mark.parametrize(
    ("declaration", "value", "type_name"),
    [
        ("type: integer", "hello", "integer"),
        ("type: integer", "'4.5'", "integer"),
        ("type: boolean", "yes", "boolean"),  # yaml.v3 reads yes as text, not a boolean
        ("type: boolean", "'True'", "boolean"),
        ("type: array\n    items:\n      type: string", "someValue", "array<string>"),
        ("type: array\n    items:\n      type: string", "[1, 2]", "array<string>"),
        ("type: string", "[a, b]", "string"),
        ("type: object", "text", "object"),
        (
            "type: array\n    items:\n      type: array\n      items:\n        type: string",
            "[a]",
            "array<array<string>>",
        ),
    ],
)
def test_typed_keys_are_type_checked_with_the_engine_message(
    tmp_path: Path, declaration: str, value: str, type_name: str
) -> None:
    """TestStackConfigErrorsWhenStackValueIsNotCorrectlyTyped and
    TestStackConfigIntegerTypeIsCorrectlyValidated; ValidateConfigValue for the rest."""
    config = f"config:\n  key:\n    {declaration}\n"
    stack = f"config:\n  test:key: {value}\n"
    assert _refused(tmp_path, config, stack) == (
        f"Stack 'dev' with configuration key 'key' must be of type '{type_name}'"
    )


@pytest.mark.parametrize(
    ("declaration", "value", "handed_over"),
    [
        ("type: integer", "20", "20"),
        ("type: integer", "'20'", "20"),  # Atoi accepts the text
        ("type: integer", "4.0", "4"),  # a whole float, written as Go writes it
        ("type: boolean", "true", "true"),
        ("type: boolean", "'false'", "false"),
        ("type: string", "42", "42"),  # a scalar from a stack file is text
        ("type: array\n    items:\n      type: string", "[a, b]", '["a","b"]'),
        ("type: object", "{b: 1, a: x}", '{"a":"x","b":1}'),
    ],
)
def test_valid_values_reach_the_program_as_the_engine_encodes_them(
    tmp_path: Path, declaration: str, value: str, handed_over: str
) -> None:
    config = f"config:\n  key:\n    {declaration}\n"
    values = _read(tmp_path, config, f"config:\n  test:key: {value}\n")
    assert values["test:key"] == handed_over


def test_defaults_are_merged_as_strings_and_compact_json(tmp_path: Path) -> None:
    """createConfigValue (config.go) and TestEnvironmentMerge's expected encodings."""
    config = (
        "config:\n"
        "  number:\n    type: integer\n    default: 42\n"
        "  flag:\n    type: boolean\n    default: true\n"
        "  names:\n    type: array\n    items:\n      type: string\n    default: [first, second]\n"
        "  short: t3.micro\n"
        "  aws:region: us-west-2\n"
    )
    values = _read(tmp_path, config)
    assert values == {
        "test:number": "42",
        "test:flag": "true",
        "test:names": '["first","second"]',
        "test:short": "t3.micro",
        "aws:region": "us-west-2",
    }


def test_the_stack_value_wins_over_the_default(tmp_path: Path) -> None:
    config = "config:\n  size:\n    type: string\n    default: small\n"
    assert _read(tmp_path, config, "config:\n  size: large\n")["test:size"] == "large"


def test_undeclared_keys_of_any_namespace_are_passed_on(tmp_path: Path) -> None:
    """TestStackConfigDoesNotErrorWhenProjectHasNotDefinedConfig: the engine does not reject
    unknown keys; the program does (stacks/config.py), which keeps the two apart."""
    stack = "config:\n  hello: 21\n  test:world: 42\n  other:colour: red\n"
    assert _read(tmp_path, "", stack) == {
        "test:hello": "21",
        "test:world": "42",
        "other:colour": "red",
    }


def test_an_empty_value_is_treated_as_an_empty_string(tmp_path: Path) -> None:
    """loaders.go checkForEmptyConfig: ``key:`` with no value is "" for now."""
    assert _read(tmp_path, "", "config:\n  test:empty:\n")["test:empty"] == ""


def test_type_checks_run_in_sorted_key_order_after_the_missing_check(tmp_path: Path) -> None:
    config = "config:\n  b:\n    type: integer\n  a:\n    type: integer\n  c:\n    type: string\n"
    stack = "config:\n  test:b: x\n  test:a: y\n"
    assert _refused(tmp_path, config, stack) == "Stack 'dev' is missing configuration value 'c'"
    stack += "  test:c: z\n"
    assert _refused(tmp_path, config, stack) == (
        "Stack 'dev' with configuration key 'a' must be of type 'integer'"
    )


@pytest.mark.parametrize(
    ("declaration", "message"),
    [
        (
            "  k:\n    type: string\n    default: a\n    value: b\n",
            "project config 'k' cannot have both a 'default' and 'value' attribute",
        ),
        (
            "  k:\n    type: array\n",
            "The configuration key 'k' declares an array but does not specify the underlying "
            "type via the 'items' attribute",
        ),
        (
            "  k:\n    type: integer\n    default: many\n",
            "The default value specified for configuration key 'k' is not of the expected "
            "type 'integer'",
        ),
        (
            "  aws:region:\n    type: string\n",
            "Configuration key 'aws:region' is not namespaced by the project and should not "
            "define a type",
        ),
        (
            "  aws:region:\n    default: eu-west-1\n",
            "Configuration key 'aws:region' is not namespaced by the project and should not "
            "define a default value. Did you mean to use the 'value' attribute instead of "
            "'default'?",
        ),
        (
            "  aws:region:\n    description: where\n",
            "Configuration key 'aws:region' is namespaced and must provide an attribute 'value'",
        ),
    ],
)
def test_declarations_the_cli_refuses_to_load(
    tmp_path: Path, declaration: str, message: str
) -> None:
    """Project.Validate (project.go L837-889), message for message."""
    _project(tmp_path, "config:\n" + declaration)
    with pytest.raises(ProjectError) as caught:
        load_project(tmp_path)
    assert str(caught.value).endswith(message)


def test_an_unknown_type_is_refused_naming_the_allowed_ones(tmp_path: Path) -> None:
    _project(tmp_path, "config:\n  k:\n    type: number\n")
    with pytest.raises(ProjectError, match="allowed: string, integer, boolean, array, object"):
        load_project(tmp_path)


def test_merge_takes_synthetic_stacks() -> None:
    """The pure merge, as env previews and tests use it, without files."""
    from workstack.project import ConfigKey

    declarations = {"n": ConfigKey(name="n", type="integer", default=3)}
    settings = merge_stack_config("p", declarations, "s", {"p:x": ConfigValue("1")})
    assert settings.values == {"p:x": "1", "p:n": "3"}
    with pytest.raises(StackConfigError, match="must be of type 'integer'"):
        merge_stack_config("p", declarations, "s", {"p:n": ConfigValue("three")})


def test_the_current_project_file_is_accepted_for_every_stack() -> None:
    project = load_project(ROOT)
    for stack in project.stacks():
        assert project.read_stack(stack).values["workstack:cloud"] == stack


@pytest.fixture
def old_project(tmp_path: Path) -> Path:
    """The repository with the Pulumi.yaml of commit 9db4ab1 (bucket keys declared without a
    default) and a program that records whether it ran."""
    shutil.copy(OLD_PROJECT, tmp_path / "Pulumi.yaml")
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    for stack in ("minikube", "gke", "eks"):
        shutil.copy(ROOT / "stacks" / f"Pulumi.{stack}.yaml", stacks)
    (stacks / "__main__.py").write_text(
        "from pathlib import Path\nPath(__file__).with_name('RAN').write_text('ran')\n"
    )
    return tmp_path


@pytest.mark.parametrize("stack", ["minikube", "gke", "eks"])
def test_render_with_the_old_project_file_stops_where_pulumi_up_would(
    old_project: Path, stack: str
) -> None:
    """Issue 12 item 1: Pulumi.yaml at 9db4ab1 declared bucketAccessKeyId and
    bucketSecretAccessKey with no default. `pulumi up` stops on every stack before the
    program runs; the renderer used to map the keys to None and render anyway."""
    result = CliRunner().invoke(app, ["render", "--stack", stack, "--project", str(old_project)])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (
        f"error: validating stack config: Stack '{stack}' is missing configuration values "
        "'bucketAccessKeyId' and 'bucketSecretAccessKey'"
    )
    assert not (old_project / "stacks" / "RAN").exists(), "the program must not run"
