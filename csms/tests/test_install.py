"""The install is lean: the runtime (make run, the Docker image) carries no test or benchmark tools."""

from __future__ import annotations

import fnmatch
import re

from conftest import ROOT

DEV_ONLY = {
    "pytest",
    "pytest-django",
    "pytest-asyncio",
    "pytest-timeout",
    "hypothesis",
    "schemathesis",
    "playwright",
    "uvicorn",
    "granian",
    "h11",
    "py-spy",
    "import-linter",
    "grimp",
    "ruff",
    "mypy",
    "django-stubs",
    "django-stubs-ext",
    "djangorestframework-stubs",
    "celery-types",
    "types-jsonschema",
}


def requirement_names(file_name: str) -> set[str]:
    lines = (ROOT / file_name).read_text().splitlines()
    return {re.split(r"[\[=<>]", line)[0].lower() for line in lines if line and not line.startswith(("#", "-r"))}


def test_runtime_requirements_hold_no_test_or_benchmark_tool():
    assert requirement_names("requirements.txt") & DEV_ONLY == set()


def test_dev_requirements_add_the_tools_on_top_of_the_runtime():
    assert "-r requirements.txt" in (ROOT / "requirements-dev.txt").read_text().splitlines()
    assert requirement_names("requirements-dev.txt") == DEV_ONLY


def test_every_requirement_is_pinned():
    for file_name in ("requirements.txt", "requirements-dev.txt"):
        for line in (ROOT / file_name).read_text().splitlines():
            if line and not line.startswith(("#", "-r")):
                assert re.fullmatch(r"[\w.\-\[\],]+==[\w.]+", line), line


def test_make_run_and_the_image_install_the_runtime_only():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^install: \$\(VENV\)/\.runtime-installed$", makefile, re.M)
    assert re.search(r"^test: install-dev$", makefile, re.M)
    assert "--quiet" not in makefile  # progress is visible
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.findall(r"pip install .*", dockerfile) == ["pip install --no-cache-dir -r requirements.txt"]


def _ignored(patterns_file: str, path: str) -> bool:
    """Whether a pattern of ``patterns_file`` (.dockerignore, .gitignore: a name or a path, ``/`` ends
    a directory's) leaves ``path`` out."""
    patterns = [line.strip().rstrip("/") for line in (ROOT / patterns_file).read_text().splitlines()]
    return any(pattern and fnmatch.fnmatch(path, pattern) for pattern in patterns if not pattern.startswith("#"))


def test_the_env_file_the_readme_writes_secrets_into_stays_out_of_the_image_and_the_repository():
    """README's docker-compose steps write DJANGO_SECRET_KEY and POSTGRES_PASSWORD into ``.env`` at the
    root, then build: the Dockerfile's ``COPY . .`` put that file into the image (``/app/.env``), for
    anyone who pulls it to read, and ``git add .`` took it into the repository."""
    deploy = (ROOT / "README.md").read_text().split("## Deploy with docker-compose", 1)[1].split("\n## ", 1)[0]
    written = re.findall(r"^cat > (\S+) <<", deploy, re.M)
    assert written == [".env"]
    assert "COPY . ." in (ROOT / "Dockerfile").read_text()
    for name in written:
        assert _ignored(".dockerignore", name), f"{name} is copied into the image"
        assert _ignored(".gitignore", name), f"{name} is not ignored by git"
