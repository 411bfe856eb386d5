"""Policy pack config files: the Pulumi CLI's ``--policy-pack-config`` format, resolved and validated
the way the CLI does it, plus the checks the CLI leaves out.

The format (pulumi ``LoadPolicyPackConfigFromFile``): a JSON object keyed by policy name (or ``all``);
a value is an enforcement level (``"advisory"``) or an object with an optional ``enforcementLevel``
and the policy's config properties. Resolution (pulumi ``ReconcilePolicyPackConfig``): every policy
starts from its own enforcement level and the defaults of its config schema, ``all`` sets every
level, then each entry overrides; each policy's properties are validated against its schema
(JSON Schema, ``type: object``, with ``enforcementLevel`` allowed).

Stricter than the CLI, because a typo there silently drops a relaxation or a tightening: an unknown
policy name, an unknown property and an entry without a ``reason`` are errors.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

LEVELS = ("advisory", "mandatory", "remediate", "disabled")
ALL = "all"
LEVEL_KEY = "enforcementLevel"
REASON_KEY = "reason"


class PolicyConfigError(ValueError):
    """A policy config file the gate refuses; the message lists every problem."""


@dataclass(frozen=True)
class PolicySchema:
    """What the analyzer says about one policy (GetAnalyzerInfo)."""

    name: str
    level: str
    properties: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    required: Sequence[str] = ()


@dataclass(frozen=True)
class ConfigEntry:
    """One entry of a config file, as written."""

    policy: str
    level: str | None
    properties: Mapping[str, Any]

    @property
    def reason(self) -> str | None:
        reason = self.properties.get(REASON_KEY)
        return reason if isinstance(reason, str) else None

    @property
    def thresholds(self) -> dict[str, Any]:
        return {k: v for k, v in self.properties.items() if k != REASON_KEY}


@dataclass(frozen=True)
class ResolvedConfig:
    """What the analyzer is configured with for one policy."""

    level: str
    properties: Mapping[str, Any]


def read_entries(path: Path) -> list[ConfigEntry]:
    """The entries of a config file; raises PolicyConfigError for a file the CLI would refuse."""
    text = path.read_text()
    if not text.strip():
        return []  # The CLI accepts an empty file.
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise PolicyConfigError(f"{path}: not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise PolicyConfigError(f"{path}: must be a JSON object keyed by policy name")
    entries, problems = [], []
    for policy, value in document.items():
        try:
            entries.append(_entry(policy, value))
        except PolicyConfigError as problem:
            problems.append(f"{policy}: {problem}")
    if problems:
        raise PolicyConfigError(_listing(path, problems))
    return entries


def _entry(policy: str, value: Any) -> ConfigEntry:
    if isinstance(value, str):
        return ConfigEntry(policy, _level(value), {})
    if not isinstance(value, dict):
        raise PolicyConfigError(
            f"{value!r} is not valid; must be an enforcement level or an object"
        )
    properties = dict(value)
    level = properties.pop(LEVEL_KEY, None)
    if level is not None and not isinstance(level, str):
        raise PolicyConfigError(f"{level!r} is not a valid enforcement level; must be a string")
    return ConfigEntry(policy, _level(level) if level is not None else None, properties)


def _level(value: str) -> str:
    if value not in LEVELS:
        raise PolicyConfigError(f"{value!r} is not a valid enforcement level ({', '.join(LEVELS)})")
    return value


def resolve(
    entries: Sequence[ConfigEntry], policies: Sequence[PolicySchema], source: str
) -> dict[str, ResolvedConfig]:
    """Every policy's level and properties, as the CLI would send them to Configure."""
    known = {policy.name: policy for policy in policies}
    problems = [problem for entry in entries for problem in _entry_problems(entry, known)]
    resolved = {policy.name: ResolvedConfig(policy.level, _defaults(policy)) for policy in policies}
    for entry in entries:
        if entry.policy == ALL and entry.level is not None:
            resolved = {
                name: ResolvedConfig(entry.level, config.properties)
                for name, config in resolved.items()
            }
    for entry in entries:
        if entry.policy in resolved:
            current = resolved[entry.policy]
            resolved[entry.policy] = ResolvedConfig(
                entry.level or current.level, {**current.properties, **entry.properties}
            )
    for policy in policies:
        problems.extend(_schema_problems(policy, resolved[policy.name].properties))
    if problems:
        raise PolicyConfigError(_listing(Path(source), problems))
    return resolved


def _entry_problems(entry: ConfigEntry, known: Mapping[str, PolicySchema]) -> list[str]:
    if entry.policy != ALL and entry.policy not in known:
        return [f"{entry.policy}: no such policy in the pack (check the spelling)"]
    problems = []
    if entry.reason is None:
        problems.append(
            f"{entry.policy}: says nothing about why; every entry must carry a "
            f'"{REASON_KEY}" (use the object form: {{"{LEVEL_KEY}": ..., "{REASON_KEY}": ...}})'
        )
    if entry.policy == ALL:
        if entry.thresholds:
            # The CLI applies only the level of "all"; thresholds there would be silently ignored.
            problems.append(f"{ALL}: takes only {LEVEL_KEY} and {REASON_KEY}")
        return problems
    allowed = known[entry.policy].properties
    for key in entry.thresholds:
        if key not in allowed:
            choices = ", ".join(sorted(k for k in allowed if k != REASON_KEY)) or "none"
            problems.append(f"{entry.policy}: unknown property {key!r} (allowed: {choices})")
    return problems


def _defaults(policy: PolicySchema) -> dict[str, Any]:
    return {key: spec["default"] for key, spec in policy.properties.items() if "default" in spec}


def _schema_problems(policy: PolicySchema, properties: Mapping[str, Any]) -> list[str]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            **policy.properties,
            LEVEL_KEY: {"type": "string", "enum": list(LEVELS)},
        },
    }
    if policy.required:
        schema["required"] = list(policy.required)
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{policy.name}: {'.'.join(str(p) for p in error.absolute_path) or '(config)'}: {error.message}"
        for error in sorted(validator.iter_errors(dict(properties)), key=str)
    ]


def _listing(path: Path, problems: Sequence[str]) -> str:
    return f"invalid policy config {path}:\n" + "\n".join(f"  - {problem}" for problem in problems)


def load_policy_config(
    path: Path | None, policies: Sequence[PolicySchema]
) -> dict[str, ResolvedConfig]:
    """Resolve the config file at ``path`` (None: no file, every policy at its production bar)."""
    entries = read_entries(path) if path is not None else []
    return resolve(entries, policies, str(path) if path is not None else "<no config>")
