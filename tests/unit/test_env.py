"""Preview environment logic against an in-memory backend (no Pulumi CLI)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from workstack.env import (
    EnvError,
    collect_garbage,
    destroy_preview,
    list_previews,
    parse_ttl,
    preview_config,
    preview_stack_name,
    start_preview,
)
from workstack.project import PulumiProject, load_project

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@dataclass
class MemoryBackend:
    """Stacks as dicts; records what was run."""

    stacks_config: dict[str, dict[str, str]] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    def stacks(self) -> list[str]:
        return sorted(self.stacks_config)

    def config(self, stack: str) -> dict[str, str]:
        return dict(self.stacks_config[stack])

    def prepare(self, stack: str, config: dict[str, str]) -> None:
        self.stacks_config[stack] = dict(config)
        self.log.append(f"prepare {stack}")

    def up(self, stack: str, output: object) -> None:
        self.log.append(f"up {stack}")

    def destroy(self, stack: str, output: object) -> None:
        del self.stacks_config[stack]
        self.log.append(f"destroy {stack}")


@pytest.mark.parametrize(
    ("branch", "stack"),
    [
        ("main", "preview-main-0d6e40"),
        ("Feature/Login_Page", "preview-feature-login-p-12ff04"),
        ("dependabot/pip/pulumi-3.272.0", "preview-dependabot-pip-b08357"),
        ("  fix--bug  ", "preview-fix-bug-1fa897"),
    ],
)
def test_stack_names_are_sanitised_and_bounded(branch: str, stack: str) -> None:
    name = preview_stack_name(branch)
    assert name == stack
    assert len(name) <= 30
    assert name == preview_stack_name(branch), "stable"


def test_branches_that_slug_alike_get_their_own_stacks() -> None:
    """Issue 14 item 6: env down of one of these destroyed the others' preview."""
    names = {preview_stack_name(b) for b in ("feat/login", "feat-login", "Feat_Login")}
    assert len(names) == 3


def test_a_minikube_preview_shares_no_cluster_wide_name_with_its_template(
    project: PulumiProject,
) -> None:
    """Issue 12 item 9: a preview of minikube reused the namespace, the volume and the
    operators of the stack it was copied from."""
    config = preview_config(
        project, "minikube", branch="feat/x", owner="o", now=NOW, ttl=timedelta(hours=1)
    )
    assert config["workstack:namespace"] == preview_stack_name("feat/x")
    assert config["workstack:installOperators"] == "false"


def test_a_minikube_preview_needs_operators_that_serve_every_namespace(tmp_path: Path) -> None:
    """The template's operators must watch the preview's namespace, or its broker never
    starts: refused, saying which key to set, before anything is created."""
    root = Path(__file__).resolve().parents[2]
    (tmp_path / "stacks").mkdir()
    (tmp_path / "Pulumi.yaml").write_text((root / "Pulumi.yaml").read_text())
    template = (root / "stacks" / "Pulumi.minikube.yaml").read_text()
    assert "workstack:operatorScope: cluster" in template
    (tmp_path / "stacks" / "Pulumi.minikube.yaml").write_text(
        template.replace("workstack:operatorScope: cluster", "workstack:operatorScope: namespace")
    )
    with pytest.raises(EnvError, match="set `workstack:operatorScope: cluster` in stacks/"):
        preview_config(
            load_project(tmp_path),
            "minikube",
            branch="feat/x",
            owner="o",
            now=NOW,
            ttl=timedelta(hours=1),
        )


def test_a_cloud_preview_leaves_global_names_to_its_own_stack(
    project: PulumiProject,
) -> None:
    template = project.read_stack("gke").values
    assert "workstack:clusterName" in template, "declared with a default, so copied"
    config = preview_config(
        project, "gke", branch="feat/x", owner="o", now=NOW, ttl=timedelta(hours=1)
    )
    assert "workstack:clusterName" not in config, "workstack-<preview stack> by default"
    assert "workstack:bucketName" not in config


def test_long_branches_never_collide() -> None:
    a = preview_stack_name("feature/a-very-long-branch-name-number-one")
    b = preview_stack_name("feature/a-very-long-branch-name-number-two")
    assert a != b


@pytest.mark.parametrize("branch", ["", "   ", "///", "___"])
def test_empty_or_unusable_branch_names_are_refused(branch: str) -> None:
    with pytest.raises(EnvError, match="branch name"):
        preview_stack_name(branch)


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("24h", timedelta(hours=24)),
        ("90m", timedelta(minutes=90)),
        ("7d", timedelta(days=7)),
        ("1d12h", timedelta(days=1, hours=12)),
    ],
)
def test_ttl_parsing(text: str, delta: timedelta) -> None:
    assert parse_ttl(text) == delta


@pytest.mark.parametrize("text", ["", "24", "1w", "-1h", "0h", "31d", "h", "soon"])
def test_bad_ttls_say_what_is_allowed(text: str) -> None:
    with pytest.raises(EnvError, match=r"TTL .* is not allowed"):
        parse_ttl(text)


def test_preview_config_is_the_template_made_ephemeral(project: PulumiProject) -> None:
    config = preview_config(
        project, "gke", branch="feature/x", owner="ada", now=NOW, ttl=timedelta(hours=2)
    )
    assert config["workstack:ephemeral"] == "true"
    assert config["gcp:project"] == "workstack-demo"
    assert config["preview:branch"] == "feature/x"
    assert config["preview:owner"] == "ada"
    assert config["preview:expires"] == "2026-11-21T14:00:00+00:00"


def test_unknown_template_lists_the_stacks(project: PulumiProject) -> None:
    with pytest.raises(
        EnvError, match="template stack 'azure' does not exist; stacks: eks, gke, minikube"
    ):
        preview_config(project, "azure", branch="b", owner="o", now=NOW, ttl=timedelta(hours=1))


def test_a_template_with_secrets_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: demo\nruntime: python\n")
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  demo:token:\n    secure: AAAB\n")
    with pytest.raises(EnvError, match=r"has secret values \(demo:token\)"):
        preview_config(
            load_project(tmp_path), "dev", branch="b", owner="o", now=NOW, ttl=timedelta(hours=1)
        )


def test_up_list_down(project: PulumiProject) -> None:
    backend = MemoryBackend()
    preview = start_preview(
        backend,
        project,
        branch="feature/x",
        template="minikube",
        ttl="2h",
        owner="ada",
        now=NOW,
        output=print,
    )
    stack = preview_stack_name("feature/x")
    assert preview.stack == stack
    assert backend.log == [f"prepare {stack}", f"up {stack}"]
    [listed] = list_previews(backend)
    assert listed == preview
    assert destroy_preview(backend, branch="feature/x", output=print) == stack
    assert list_previews(backend) == []
    with pytest.raises(EnvError, match="there is no preview for branch 'feature/x'"):
        destroy_preview(backend, branch="feature/x", output=print)


def test_bad_input_creates_nothing(project: PulumiProject) -> None:
    backend = MemoryBackend()
    for kwargs in (
        {"branch": "", "ttl": "1h", "template": "minikube"},
        {"branch": "b", "ttl": "forever", "template": "minikube"},
        {"branch": "b", "ttl": "1h", "template": "nope"},
    ):
        with pytest.raises(EnvError):
            start_preview(backend, project, owner="o", now=NOW, output=print, **kwargs)  # type: ignore[arg-type]
    assert backend.log == []


def test_a_failed_teardown_check_stops_up_before_anything_exists(project: PulumiProject) -> None:
    backend = MemoryBackend()
    with pytest.raises(
        EnvError, match="would leave things behind on destroy:\n  - bucket: protected"
    ):
        start_preview(
            backend,
            project,
            branch="b",
            template="minikube",
            owner="o",
            now=NOW,
            output=print,
            check=lambda stack, config: ["bucket: protected"],
        )
    assert backend.log == []


def test_gc_removes_only_expired_previews(project: PulumiProject) -> None:
    backend = MemoryBackend()
    for branch, ttl in (("old", "1h"), ("fresh", "3d"), ("older", "30m")):
        start_preview(
            backend,
            project,
            branch=branch,
            template="minikube",
            ttl=ttl,
            owner="o",
            now=NOW,
            output=print,
        )
    backend.stacks_config["preview-unrelated"] = {"workstack:cloud": "minikube"}  # no records
    backend.stacks_config["minikube"] = {}
    removed = collect_garbage(backend, now=NOW + timedelta(hours=2), output=print)
    assert sorted(p.branch for p in removed) == ["old", "older"]
    assert backend.stacks() == sorted(
        ["minikube", preview_stack_name("fresh"), "preview-unrelated"]
    )


def test_the_command_checks_input_before_needing_pulumi() -> None:
    from typer.testing import CliRunner

    from workstack.main import app

    root = str(Path(__file__).resolve().parents[2])
    runner = CliRunner()
    for args, message in (
        (["--branch", ""], "branch name is empty"),
        (["--branch", "x", "--ttl", "eventually"], "TTL 'eventually' is not allowed"),
        (["--branch", "x", "--from-stack", "aks"], "template stack 'aks' does not exist"),
    ):
        result = runner.invoke(app, ["env", "up", "--project", root, *args])
        assert result.exit_code == 2, result.output
        assert message in result.stderr


@pytest.mark.pulumi_cli
def test_previews_with_the_real_automation_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the pulumi CLI: a real local backend, a stack created, listed, and removed.

    `up` needs a cluster; this covers everything around it.
    """
    from workstack.env import AutomationBackend

    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "workstack-tests")
    root = Path(__file__).resolve().parents[2]
    project = load_project(root)
    backend = AutomationBackend(project, backend_url=f"file://{tmp_path}")
    monkeypatch.setenv("PULUMI_BACKEND_URL", f"file://{tmp_path}")
    stack, config = preview_config_for(project)
    backend.prepare(stack, config)
    try:
        [preview] = list_previews(backend)
        assert preview.stack == stack
        assert backend.config(stack)["workstack:ephemeral"] == "true"
    finally:
        backend.destroy(stack, print)  # nothing was deployed; this removes the stack
    assert not project.stack_file(stack).exists(), "its config file goes with it"
    assert list_previews(backend) == []


def preview_config_for(project: PulumiProject) -> tuple[str, dict[str, str]]:
    from workstack.env import plan_preview

    return plan_preview(
        project, branch="ci/automation-test", template="minikube", ttl="1h", owner="ci", now=NOW
    )
