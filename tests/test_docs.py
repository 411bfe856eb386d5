"""The README stays true: its generated config reference matches the program, and the commands it
gives a new user exist."""

from __future__ import annotations

import re

from tools.config_reference import README, render_readme
from tools.stack_render import REPO_ROOT


def test_config_reference_is_up_to_date() -> None:
    text = README.read_text()
    assert render_readme(text) == text, (
        "run `python -m tools.config_reference` and commit README.md"
    )


def test_every_make_target_the_readme_mentions_exists() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z-]+):", makefile, flags=re.MULTILINE))
    mentioned = set(re.findall(r"`make ([a-z-]+)", README.read_text()))
    assert {"check", "test"} <= mentioned
    assert mentioned <= targets


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()


def test_every_relative_link_in_the_readme_resolves() -> None:
    links = re.findall(r"\]\(((?!https?:|#)[^)#]+)", README.read_text())
    missing = [link for link in links if not (REPO_ROOT / link).exists()]
    assert missing == []
