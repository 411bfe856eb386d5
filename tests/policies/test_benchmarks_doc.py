"""policies/BENCHMARKS.md names only rules the pack has, and checkov ids in checkov's format."""

from __future__ import annotations

import re
from pathlib import Path

from tools.policy_docs import BENCHMARKS, README

RULE = re.compile(r"`([a-z]+(?:-[a-z]+){2,})`")
CHECKOV = re.compile(r"\bCKV2?_GCP_\d+\b")


def pack_rules(readme: Path) -> set[str]:
    return set(re.findall(r"^### ([a-z-]+)$", readme.read_text(), re.M))


def test_every_rule_in_the_mapping_is_in_the_pack() -> None:
    named = set(RULE.findall(BENCHMARKS.read_text()))
    assert named, "the mapping names no rule"
    assert named <= pack_rules(README), named - pack_rules(README)


def test_the_mapping_cites_checkov_ids_and_is_in_the_reference() -> None:
    text = BENCHMARKS.read_text()
    assert len(set(CHECKOV.findall(text))) >= 20
    assert text.rstrip() in README.read_text()
