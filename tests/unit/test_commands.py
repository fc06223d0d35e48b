"""Command templates: which braces are placeholders, quoting, and the checks' messages."""

from __future__ import annotations

import pytest

from workstack.sdk.commands import CommandError, check_template, placeholders, render


def test_only_known_names_in_single_braces_are_placeholders() -> None:
    template = "awk '{print $1}' {input} > {output}; echo ${HOME} {{literal}}"
    assert placeholders(template) == {"input", "output"}
    assert render(template, {"input": "in put.csv", "output": "o'ut.csv"}) == (
        "awk '{print $1}' 'in put.csv' > 'o'\"'\"'ut.csv'; echo ${HOME} {{literal}}"
    )


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (None, "None is not allowed; expected a command line"),
        ("   ", "'   ' is not allowed; expected a command line"),
        ("tool {inptu} {output}", "{inptu} is not a placeholder; allowed: {input}, {output}"),
        ("tool {output}", "it must contain {input}"),
        ("tool {input}", "exactly one of {output} or {output_dir}"),
    ],
)
def test_bad_templates_name_the_key_the_value_and_the_rule(template: object, message: str) -> None:
    with pytest.raises(CommandError) as caught:
        check_template(
            template,
            key="--command",
            allowed=("input", "output", "output_dir"),
            required=("input",),
            one_of=("output", "output_dir"),
        )
    assert str(caught.value).startswith(f"--command: {template!r} is not allowed; ")
    assert message in str(caught.value)
    assert caught.value.key == "--command"
