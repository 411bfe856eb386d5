"""DR_RUNBOOK.md keeps the sections the alert policies link to, and its links resolve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = REPO_ROOT / "DR_RUNBOOK.md"
DOCS = (
    RUNBOOK,
    REPO_ROOT / "ops/restore_drill/README.md",
    REPO_ROOT / "ops/restore_drill/checks/README.md",
)
ALERT_SECTIONS = (
    "Alert: automated backup failed",
    "Alert: export failed",
    "Alert: export stale",
    "Alert: instance down",
    "Alert: disk nearly full",
)


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading."""
    kept = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return kept.replace(" ", "-")


def anchors(document: Path) -> set[str]:
    headings = re.findall(r"^#{1,6} (.+)$", document.read_text(), flags=re.MULTILINE)
    return {github_anchor(h) for h in headings}


@pytest.mark.parametrize("section", ALERT_SECTIONS)
def test_every_alert_has_its_section_at_the_anchor_the_alert_links_to(section: str) -> None:
    assert f"\n## {section}\n" in RUNBOOK.read_text()
    # infra/cloudsql_backups/alerting.py links to "alert-" + title with spaces as hyphens.
    assert "alert-" + section.removeprefix("Alert: ").replace(" ", "-") in anchors(RUNBOOK)


def test_every_alert_section_says_what_happened_causes_and_first_steps() -> None:
    text = RUNBOOK.read_text()
    for section in ALERT_SECTIONS:
        body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
        assert "**What happened.**" in body
        assert "**Likely causes.**" in body
        assert "**First steps.**" in body


@pytest.mark.parametrize("document", DOCS, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_links_resolve(document: Path) -> None:
    links = re.findall(r"\]\(([^)]+)\)", document.read_text())
    broken = []
    for link in links:
        if link.startswith(("http://", "https://")):
            continue
        path, _, fragment = link.partition("#")
        target = (document.parent / path).resolve() if path else document
        if not target.exists() or (
            fragment and target.suffix == ".md" and fragment not in anchors(target)
        ):
            broken.append(link)
    assert broken == []
