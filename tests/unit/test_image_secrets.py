"""Secrets stay out of images: secret-looking files are excluded by default, symlinks may not
leave the workload folder, and `workstack image context --list` shows what goes in and why
the rest stays out (issue 14, item 5)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from workstack.images import ContextError, generate_context
from workstack.main import app

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "workloads" / "word-count"

SECRETS = [
    ".env",
    ".env.production",
    "config/.env",
    ".envrc",
    ".aws/credentials",
    ".ssh/id_rsa",
    ".gnupg/private-keys-v1.d/key",
    ".docker/config.json",
    ".kube/config",
    "server.pem",
    "certs/tls.key",
    "id_rsa",
    "id_ed25519.pub",
    "credentials",
    "credentials.json",
    "gcp/my-service-account-key.json",
    ".netrc",
    ".pypirc",
    ".npmrc",
    ".git/config",
    ".git-credentials",
    "client.p12",
    "client.pfx",
    "kubeconfig",
    "kubeconfig.yaml",
    "prod.kubeconfig",
]


@pytest.fixture
def workload(tmp_path: Path) -> Path:
    folder = tmp_path / "src" / "word-count"
    shutil.copytree(FIXTURE, folder)
    return folder


def context_files(folder: Path, out: Path) -> set[str]:
    context = generate_context(folder, out)
    return {
        p.relative_to(context.path / "app").as_posix()
        for p in (context.path / "app").rglob("*")
        if p.is_file()
    }


@pytest.mark.parametrize("secret", SECRETS)
def test_secret_looking_files_stay_out_by_default(
    workload: Path, tmp_path: Path, secret: str
) -> None:
    path = workload / secret
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("AKIAEXAMPLEEXAMPLE00\n")
    files = context_files(workload, tmp_path / "ctx")
    assert secret not in files
    assert "word_count.py" in files


def test_workstackignore_brings_a_file_back_deliberately(workload: Path, tmp_path: Path) -> None:
    (workload / "config").mkdir()
    (workload / "config" / "credentials.example").write_text("user = <your name>\n")
    (workload / "config" / "credentials").write_text("user = alice\npassword = hunter2\n")
    assert "config/credentials.example" not in context_files(workload, tmp_path / "a")
    (workload / ".workstackignore").write_text("!config/credentials.example\n")
    files = context_files(workload, tmp_path / "b")
    assert "config/credentials.example" in files
    assert "config/credentials" not in files
    assert ".workstackignore" not in files


def test_a_symlink_out_of_the_workload_folder_is_refused(workload: Path, tmp_path: Path) -> None:
    outside = tmp_path / "home" / ".aws"
    outside.mkdir(parents=True)
    (outside / "config").write_text("aws_secret_access_key = x\n")
    (workload / "settings.cfg").symlink_to(outside / "config")
    with pytest.raises(ContextError) as caught:
        generate_context(workload, tmp_path / "ctx")
    message = str(caught.value)
    assert str(workload / "settings.cfg") in message
    assert str(outside / "config") in message
    assert "is not allowed; links must stay inside the workload folder" in message
    assert not (tmp_path / "ctx").exists()


def test_a_symlinked_folder_out_of_the_workload_folder_is_refused(
    workload: Path, tmp_path: Path
) -> None:
    (tmp_path / "elsewhere").mkdir()
    (workload / "shared").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ContextError, match=f"a symlink to {tmp_path / 'elsewhere'}"):
        generate_context(workload, tmp_path / "ctx")


def test_symlinks_inside_the_folder_or_excluded_are_fine(workload: Path, tmp_path: Path) -> None:
    (workload / "rules.py").symlink_to(workload / "text_rules.py")
    (workload / ".venv" / "bin").mkdir(parents=True)
    (workload / ".venv" / "bin" / "python").symlink_to("/usr/bin/python3")
    files = context_files(workload, tmp_path / "ctx")
    assert "rules.py" in files
    assert not [f for f in files if f.startswith(".venv")]


def test_an_excluded_entrypoint_is_reported(workload: Path, tmp_path: Path) -> None:
    (workload / ".workstackignore").write_text("word_count.py\n")
    with pytest.raises(
        ContextError,
        match=r"entrypoint: module 'word_count' is excluded from the image by word_count.py "
        r"\(.workstackignore:1\)",
    ):
        generate_context(workload, tmp_path / "ctx")


def test_list_shows_what_goes_in_and_what_stays_out_and_why(workload: Path) -> None:
    (workload / ".env").write_text("TOKEN=x\n")
    (workload / "keys").mkdir()
    (workload / "keys" / "deploy.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    (workload / ".workstackignore").write_text("# local notes\nscratch.txt\n")
    (workload / "scratch.txt").write_text("notes")
    result = CliRunner().invoke(app, ["image", "context", "--list", str(workload)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "+ word_count.py" not in lines  # paths are the context's
    assert "+ app/word_count.py" in lines
    assert "+ Dockerfile" in lines
    assert "+ deps/requirements.txt" in lines
    assert any(line.startswith("+ workstack/workstack-0.1.0-py3-none-any.whl") for line in lines)
    assert "- .env  (**/.env: default (secrets))" in lines
    assert "- keys/deploy.pem  (**/*.pem: default (secrets))" in lines
    assert "- scratch.txt  (scratch.txt: .workstackignore:2)" in lines
    assert "- data/  (data: default)" in lines
    assert "- notes/  (notes: .dockerignore:2)" in lines
    assert len(lines[-1]) == 20  # the tag, last
    assert not [line for line in lines if ".env" in line and line.startswith("+")]
