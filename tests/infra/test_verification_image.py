"""The weekly verification's image and the job that runs it fit together, checked offline: the job's
command is the Dockerfile's entry point, its interpreter is the virtualenv `uv sync` creates there,
the module it starts is copied into the image, and every package that module imports is one of the
locked runtime dependencies `uv sync --no-dev` installs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from importlib.metadata import packages_distributions
from pathlib import Path

from cloudsql_backups.restore_verification import COMMAND

from tools.stack_render import RenderedStack

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "ops" / "restore_verification" / "Dockerfile"
IGNORE_FILE = DOCKERFILE.with_name("Dockerfile.dockerignore")
INSTRUCTION = re.compile(r"^(?P<op>[A-Z]+)\s+(?P<args>.*)$")


def instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text(encoding="utf-8"))
    found = []
    for line in text.splitlines():
        match = INSTRUCTION.match(line.strip())
        if match and not line.lstrip().startswith("#"):
            found.append((match["op"], match["args"]))
    return found


def values(op: str) -> list[str]:
    return [args for name, args in instructions() if name == op]


def env() -> dict[str, str]:
    pairs = " ".join(values("ENV"))
    return dict(re.findall(r"(\w+)=(\S+)", pairs))


def test_the_job_runs_the_images_entry_point(
    rendered: Callable[[str, bool], RenderedStack],
) -> None:
    job = rendered("staging", False).by_name("restore-verification-job")
    [container] = job.inputs["template"]["template"]["containers"]
    [entrypoint] = values("ENTRYPOINT")
    assert container["commands"] == json.loads(entrypoint) == list(COMMAND)


def test_the_jobs_interpreter_is_the_virtualenv_uv_sync_creates() -> None:
    interpreter, flag, module = COMMAND
    [workdir] = values("WORKDIR")
    assert interpreter == f"{env()['UV_PROJECT_ENVIRONMENT']}/bin/python"
    assert env()["UV_PROJECT_ENVIRONMENT"].startswith(workdir + "/")
    [sync] = [run for run in values("RUN") if "uv sync" in run]
    assert "--frozen" in sync and "--no-dev" in sync
    # The module is in a directory the image copies, relative to WORKDIR (Python's path).
    package = module.split(".")[0]
    assert f"{package}/ ./{package}/" in values("COPY")
    assert (REPO_ROOT / module.replace(".", "/") / "__main__.py").is_file()
    assert flag == "-m"


def test_the_image_uses_the_projects_uv_and_python() -> None:
    uv_version = re.search(r"^UV_VERSION := (\S+)$", (REPO_ROOT / "Makefile").read_text(), re.M)
    assert uv_version is not None
    assert f"ghcr.io/astral-sh/uv:{uv_version[1]} AS uv" in values("FROM")
    [python] = [image for image in values("FROM") if image.startswith("python:")]
    assert python.startswith(f"python:{sys.version_info.major}.{sys.version_info.minor}-")


def test_the_build_context_holds_what_the_image_copies() -> None:
    kept = {
        line[1:].rstrip("/")
        for line in IGNORE_FILE.read_text().splitlines()
        if line.startswith("!")
    }
    for copy in values("COPY"):
        if copy.startswith("--from"):
            continue
        *sources, _destination = copy.split()
        for source in sources:
            assert source.rstrip("/").replace("jso[n]", "json") in kept, source


def runtime_distributions() -> set[str]:
    """The locked packages `uv sync --no-dev` installs: the project's dependencies, transitively."""
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text(encoding="utf-8"))
    packages = {package["name"]: package for package in lock["package"]}
    [project] = [p for p in lock["package"] if p.get("source", {}).get("virtual") == "."]
    wanted = [dependency["name"] for dependency in project["dependencies"]]
    found: set[str] = set()
    while wanted:
        name = wanted.pop()
        if name in found:
            continue
        found.add(name)
        package = packages[name]
        wanted += [d["name"] for d in package.get("dependencies", [])]
        for extra in package.get("optional-dependencies", {}).values():
            wanted += [d["name"] for d in extra]
    return found


def test_everything_the_entry_point_imports_is_a_runtime_dependency() -> None:
    # A fresh interpreter, so only what the entry point's modules import is loaded.
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, ops.restore_verification.weekly; print(*sys.modules)"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    by_module = packages_distributions()
    needed = {
        dist.lower().replace("_", "-")
        for module in loaded
        for dist in by_module.get(module.split(".")[0], [])
    }
    missing = needed - runtime_distributions()
    assert not missing, (
        f"imported by the entry point but not installed by uv sync --no-dev: {missing}"
    )
