"""Preview environments: a full copy of a stack per branch, expired and torn down on time.

``up`` creates (or selects) a stack named after the branch, copies the template stack's config,
forces ephemeral-safe settings, records branch, owner and expiry, and runs ``pulumi up``;
``down`` destroys the stack and removes it; ``list`` shows preview stacks and their expiry;
``gc`` destroys every expired one. The Pulumi side goes through a small :class:`Backend`
protocol, implemented on Pulumi's Automation API by :class:`AutomationBackend`, so the logic
is tested without the Pulumi CLI.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from workstack.project import PulumiProject, StackConfigError
from workstack.sdk.errors import WorkstackError

__all__ = [
    "DEFAULT_TTL",
    "PREVIEW_PREFIX",
    "AutomationBackend",
    "Backend",
    "EnvError",
    "Preview",
    "collect_garbage",
    "destroy_preview",
    "list_previews",
    "parse_ttl",
    "plan_preview",
    "preview_config",
    "preview_stack_name",
    "start_preview",
]

PREVIEW_PREFIX = "preview-"
DEFAULT_TTL = "24h"
MAX_TTL = timedelta(days=30)
_META = "preview"  # config namespace of the preview's own records: preview:branch, ...
_SLUG_LIMIT = 22  # keeps workstack-preview-<slug> within GKE's 40-character cluster names
_GLOBAL_NAMES = ("clusterName", "bucketName")
_TTL = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")

Output = Callable[[str], None]


class EnvError(WorkstackError, ValueError):
    """A preview environment cannot be made or removed as asked; the message says why."""


def preview_stack_name(branch: str) -> str:
    """The stack name for ``branch``: ``preview-<slug>-<hash>``, stable, at most 30 characters.

    The slug is the branch lowercased with anything but letters and digits turned into
    dashes, cut to fit; the hash is of the exact branch name, so ``feat/login``,
    ``feat-login`` and ``Feat_Login`` get three stacks and ``env down`` of one never
    destroys another.

    Raises:
        EnvError: The branch is empty or has no letter or digit.
    """
    if not isinstance(branch, str) or not branch.strip():
        raise EnvError(
            "branch name is empty; give the branch the preview is for, e.g. feature/login"
        )
    slug = re.sub(r"[^a-z0-9]+", "-", branch.strip().lower()).strip("-")
    if not slug:
        raise EnvError(f"branch name {branch!r} has no letter or digit to name a stack after")
    digest = hashlib.sha256(branch.encode()).hexdigest()[:6]
    return f"{PREVIEW_PREFIX}{slug[: _SLUG_LIMIT - 7].rstrip('-')}-{digest}"


def parse_ttl(text: str) -> timedelta:
    """``24h``, ``90m``, ``7d``, ``1d12h``: how long a preview lives.

    Raises:
        EnvError: The text is not of that form, is zero, or exceeds 30 days.
    """
    match = _TTL.match(text.strip()) if isinstance(text, str) else None
    if match is None or not any(match.groups()):
        raise EnvError(
            f"TTL {text!r} is not allowed; expected days, hours and minutes such as 24h, "
            "90m, 7d or 1d12h"
        )
    days, hours, minutes = (int(part or 0) for part in match.groups())
    ttl = timedelta(days=days, hours=hours, minutes=minutes)
    if ttl <= timedelta(0) or ttl > MAX_TTL:
        raise EnvError(f"TTL {text!r} is not allowed; expected more than 0 and at most 30d")
    return ttl


@dataclass(frozen=True)
class Preview:
    """A preview stack and what was recorded about it."""

    stack: str
    branch: str
    owner: str
    created: datetime
    expires: datetime

    def expired(self, now: datetime) -> bool:
        """Whether ``now`` is past its expiry."""
        return now >= self.expires

    @staticmethod
    def from_config(stack: str, config: dict[str, str]) -> Preview:
        """Read a preview's records from its stack config.

        Raises:
            EnvError: The records are missing or malformed (not a workstack preview).
        """
        try:
            return Preview(
                stack=stack,
                branch=config[f"{_META}:branch"],
                owner=config.get(f"{_META}:owner", ""),
                created=datetime.fromisoformat(config[f"{_META}:created"]),
                expires=datetime.fromisoformat(config[f"{_META}:expires"]),
            )
        except (KeyError, ValueError) as error:
            raise EnvError(f"stack {stack!r} has no valid preview records ({error})") from None


def preview_config(
    project: PulumiProject,
    template: str,
    *,
    branch: str,
    owner: str,
    now: datetime,
    ttl: timedelta,
) -> dict[str, str]:
    """The preview stack's config: the template's, made ephemeral, plus the preview records.

    Raises:
        EnvError: The template stack does not exist, the Pulumi CLI would refuse its config,
            or it has secret values (they are encrypted for the template stack and cannot be
            copied; set them on the preview).
    """
    try:
        settings = project.read_stack(template)
    except FileNotFoundError:
        known = ", ".join(s for s in project.stacks() if not s.startswith(PREVIEW_PREFIX))
        raise EnvError(f"template stack {template!r} does not exist; stacks: {known}") from None
    except StackConfigError as error:
        # The CLI would refuse the template's config, and so the preview's copy of it.
        raise EnvError(f"template stack {template!r}: {error}") from None
    if settings.secret_keys:
        raise EnvError(
            f"template stack {template!r} has secret values ({', '.join(settings.secret_keys)}); "
            "they cannot be copied: set them on the preview with `pulumi config set --secret`"
        )
    values = dict(settings.values)
    shared_cluster = values.get(f"{project.name}:cloud", "minikube") == "minikube"
    for key in _GLOBAL_NAMES:
        # Names global to the cloud account (a cluster, a bucket it makes) are left to
        # their defaults, which derive from the preview's own stack name or are generated.
        # On minikube the bucket exists already: a preview's paths are under its namespace.
        if not (shared_cluster and key == "bucketName"):
            values.pop(f"{project.name}:{key}", None)
    if shared_cluster:
        # A minikube preview shares its cluster with the template: it gets a namespace of
        # its own and leaves the cluster-wide operators and CRDs to the template's stack,
        # whose operators must then serve the preview's namespace too.
        scope = values.get(f"{project.name}:operatorScope", "namespace")
        if scope != "cluster":
            raise EnvError(
                f"template stack {template!r} installs operators that serve its own namespace "
                f"only (operatorScope: {scope}), and a preview on its cluster runs in a "
                "namespace of its own: set `workstack:operatorScope: cluster` in "
                f"stacks/Pulumi.{template}.yaml and `pulumi up -s {template}` first"
            )
        values[f"{project.name}:namespace"] = preview_stack_name(branch)
        values[f"{project.name}:installOperators"] = "false"
    return values | {
        f"{project.name}:ephemeral": "true",
        f"{_META}:branch": branch,
        f"{_META}:owner": owner,
        f"{_META}:created": now.isoformat(timespec="seconds"),
        f"{_META}:expires": (now + ttl).isoformat(timespec="seconds"),
    }


class Backend(Protocol):
    """What preview environments need from Pulumi."""

    def stacks(self) -> list[str]:
        """Names of the project's stacks."""
        ...

    def config(self, stack: str) -> dict[str, str]:
        """A stack's config (plain values)."""
        ...

    def prepare(self, stack: str, config: dict[str, str]) -> None:
        """Create or select ``stack`` and set its config to exactly ``config``."""
        ...

    def up(self, stack: str, output: Output) -> None:
        """Run ``pulumi up`` on ``stack``, streaming its output."""
        ...

    def destroy(self, stack: str, output: Output) -> None:
        """Destroy ``stack``'s resources and remove the stack."""
        ...


def plan_preview(
    project: PulumiProject, *, branch: str, template: str, ttl: str, owner: str, now: datetime
) -> tuple[str, dict[str, str]]:
    """Check a preview request and work out its stack name and config, touching nothing.

    Raises:
        EnvError: Bad branch, TTL or template.
    """
    stack = preview_stack_name(branch)
    ttl_delta = parse_ttl(ttl)
    return stack, preview_config(
        project, template, branch=branch, owner=owner, now=now, ttl=ttl_delta
    )


def start_preview(
    backend: Backend,
    project: PulumiProject,
    *,
    branch: str,
    template: str,
    ttl: str = DEFAULT_TTL,
    owner: str,
    now: datetime,
    output: Output,
    check: Callable[[str, dict[str, str]], list[str]] | None = None,
) -> Preview:
    """Create or update the preview for ``branch`` and bring it up.

    Args:
        backend: Where the stacks live.
        project: The Pulumi project.
        branch: The branch (or pull request) the preview is for.
        template: The stack whose config is copied (``minikube``, ``gke``, ``eks``).
        ttl: How long it lives (``24h``).
        owner: Who asked for it.
        now: The current time (UTC).
        output: Where ``pulumi up``'s output goes.
        check: Called with the stack name and config before anything is created; returns
            problems (things that would survive ``destroy``). Any problem stops ``up``.

    Raises:
        EnvError: Bad branch, TTL or template, or the check found problems.
    """
    stack, config = plan_preview(
        project, branch=branch, template=template, ttl=ttl, owner=owner, now=now
    )
    if check is not None:
        problems = check(stack, config)
        if problems:
            raise EnvError(
                f"preview {stack} would leave things behind on destroy:\n  - "
                + "\n  - ".join(problems)
            )
    backend.prepare(stack, config)
    backend.up(stack, output)
    return Preview.from_config(stack, config)


def list_previews(backend: Backend) -> list[Preview]:
    """Every preview stack, soonest to expire first; stacks without records are skipped."""
    previews = []
    for stack in backend.stacks():
        if stack.startswith(PREVIEW_PREFIX):
            try:
                previews.append(Preview.from_config(stack, backend.config(stack)))
            except EnvError:
                continue
    return sorted(previews, key=lambda preview: preview.expires)


def destroy_preview(backend: Backend, *, branch: str, output: Output) -> str:
    """Destroy and remove the preview of ``branch``; returns its stack name.

    Raises:
        EnvError: There is no preview for that branch.
    """
    stack = preview_stack_name(branch)
    if stack not in backend.stacks():
        raise EnvError(f"there is no preview for branch {branch!r} (stack {stack})")
    backend.destroy(stack, output)
    return stack


def collect_garbage(backend: Backend, *, now: datetime, output: Output) -> list[Preview]:
    """Destroy every expired preview; returns the ones removed."""
    removed = []
    for preview in list_previews(backend):
        if preview.expired(now):
            output(
                f"destroying {preview.stack} (branch {preview.branch}, expired {preview.expires})"
            )
            backend.destroy(preview.stack, output)
            removed.append(preview)
    return removed


def default_owner() -> str:
    """Who is running this: ``$GITHUB_ACTOR``, ``$USER`` or "unknown"."""
    return os.environ.get("GITHUB_ACTOR") or os.environ.get("USER") or "unknown"


def utc_now() -> datetime:
    """The current time, in UTC."""
    return datetime.now(UTC)


class AutomationBackend:
    """:class:`Backend` on Pulumi's Automation API, for the project on disk.

    By default stacks live in a local file backend under the project (``.pulumi/``) with the
    passphrase secrets provider (``PULUMI_CONFIG_PASSPHRASE``); ``backend_url=None`` uses
    whatever backend the user is logged in to.
    """

    def __init__(self, project: PulumiProject, *, backend_url: str | None = "local") -> None:
        if shutil.which("pulumi") is None:
            raise EnvError(
                "the pulumi CLI is not on PATH; install it (https://www.pulumi.com/docs/install/, "
                "e.g. `curl -fsSL https://get.pulumi.com | sh`) and retry"
            )
        env: dict[str, str] = {}
        secrets_provider = None
        if backend_url == "local":
            (project.root / ".pulumi").mkdir(exist_ok=True)
            env["PULUMI_BACKEND_URL"] = f"file://{project.root / '.pulumi'}"
            secrets_provider = "passphrase"
            if (
                "PULUMI_CONFIG_PASSPHRASE" not in os.environ
                and "PULUMI_CONFIG_PASSPHRASE_FILE" not in os.environ
            ):
                raise EnvError(
                    "the local backend encrypts secrets with a passphrase: set "
                    "PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE)"
                )
        elif backend_url is not None:
            env["PULUMI_BACKEND_URL"] = backend_url
        from pulumi import automation

        self._automation = automation
        self._project = project
        self._workspace = automation.LocalWorkspace(
            work_dir=str(project.root), env_vars=env, secrets_provider=secrets_provider
        )

    def _guard(self, stack: str, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except self._automation.ConcurrentUpdateError:
            raise EnvError(
                f"stack {stack} is locked by another update; wait for it, or if it crashed run "
                f"`pulumi cancel -s {stack}`"
            ) from None
        except self._automation.CommandError as error:
            raise EnvError(
                f"pulumi failed on stack {stack}: {str(error).strip()[-2000:]}"
            ) from None

    def stacks(self) -> list[str]:
        """Names of the project's stacks in the backend."""
        return [summary.name for summary in self._guard("*", self._workspace.list_stacks)]

    def config(self, stack: str) -> dict[str, str]:
        """A stack's config, plain values only."""
        values = self._guard(stack, lambda: self._workspace.get_all_config(stack))
        return {key: value.value for key, value in values.items() if not value.secret}

    def prepare(self, stack: str, config: dict[str, str]) -> None:
        """Create or select ``stack`` and set its config."""
        selected = self._guard(
            stack,
            lambda: self._automation.create_or_select_stack(
                stack, work_dir=str(self._project.root), opts=self._workspace_options()
            ),
        )
        self._guard(
            stack,
            lambda: selected.set_all_config(
                {key: self._automation.ConfigValue(value) for key, value in config.items()}
            ),
        )

    def _workspace_options(self) -> Any:
        return self._automation.LocalWorkspaceOptions(
            env_vars=self._workspace.env_vars, secrets_provider=self._workspace.secrets_provider
        )

    def _stack(self, stack: str) -> Any:
        return self._automation.select_stack(
            stack, work_dir=str(self._project.root), opts=self._workspace_options()
        )

    def outputs(self, stack: str) -> dict[str, Any]:
        """``pulumi stack output --json --show-secrets``: the stack's outputs, plain values."""
        values = self._guard(stack, lambda: self._stack(stack).outputs())
        return {key: value.value for key, value in values.items()}

    def up(self, stack: str, output: Output) -> None:
        """``pulumi up``, streamed."""
        self._guard(stack, lambda: self._stack(stack).up(on_output=output))

    def destroy(self, stack: str, output: Output) -> None:
        """``pulumi destroy``, then remove the stack and its config file."""
        self._guard(stack, lambda: self._stack(stack).destroy(on_output=output))
        self._guard(stack, lambda: self._workspace.remove_stack(stack))
