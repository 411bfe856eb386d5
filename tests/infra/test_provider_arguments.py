"""Every argument the program sends must be one the pulumi-gcp provider knows.

A misspelt field passes mocks and fails in production, so each registered resource's inputs (wire
names) are checked, recursively, against the typed Args classes of the installed ``pulumi_gcp``.
"""

from __future__ import annotations

import importlib
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi._types as pulumi_types
import pytest

from tools.stack_render import RegisteredResource, RenderedStack, render

_PULUMI_OWNED = ("pulumi:", "cloudsql-backups:")


def args_class_of(type_token: str) -> type:
    """``gcp:sql/databaseInstance:DatabaseInstance`` -> ``pulumi_gcp.sql.DatabaseInstanceArgs``."""
    _, module_path, class_name = type_token.split(":")
    module = importlib.import_module(f"pulumi_gcp.{module_path.split('/')[0]}")
    return getattr(module, f"{class_name}Args")  # type: ignore[no-any-return]


def _input_types(annotation: Any) -> list[type]:
    """The ``@pulumi.input_type`` classes reachable from an annotation (through Optional, Input, lists...)."""
    if isinstance(annotation, type) and pulumi_types.is_input_type(annotation):
        return [annotation]
    found: list[type] = []
    for argument in typing.get_args(annotation):
        found.extend(_input_types(argument))
    return found


def unknown_fields(value: Any, args_class: type, path: str) -> list[str]:
    if not isinstance(value, Mapping):
        return []
    # Keyed by wire name (camelCase), as the engine and the provider see them.
    field_types = pulumi_types.input_type_types(args_class)
    problems = []
    for key, nested in value.items():
        if key not in field_types:
            problems.append(f"{path}.{key}")
            continue
        for nested_class in dict.fromkeys(_input_types(field_types[key])):
            if isinstance(nested, Sequence) and not isinstance(nested, str):
                for index, item in enumerate(nested):
                    problems.extend(unknown_fields(item, nested_class, f"{path}.{key}[{index}]"))
            else:
                problems.extend(unknown_fields(nested, nested_class, f"{path}.{key}"))
    return problems


def provider_resources(stack: RenderedStack) -> list[RegisteredResource]:
    return [r for r in stack.resources if not r.type.startswith(_PULUMI_OWNED)]


@pytest.mark.parametrize("stack_name", ["staging", "prod"])
def test_every_argument_is_known_to_pulumi_gcp(stack_name: str) -> None:
    stack = render(
        stack_name,
        preview=True,
        overrides={
            "public_ip_enabled": "true",
            "authorized_networks": ["203.0.113.0/24"],
            "backup_bucket_kms_key": "projects/p/locations/eu/keyRings/r/cryptoKeys/k",
        },
    )
    problems = [
        problem
        for resource in provider_resources(stack)
        for problem in unknown_fields(resource.inputs, args_class_of(resource.type), resource.name)
    ]
    assert problems == []


def test_the_check_catches_a_misspelt_field() -> None:
    inputs = {"settings": {"backupConfiguration": {"enabled": True, "pointInTimeRecovery": True}}}
    problems = unknown_fields(
        inputs, args_class_of("gcp:sql/databaseInstance:DatabaseInstance"), "instance"
    )
    assert problems == ["instance.settings.backupConfiguration.pointInTimeRecovery"]
