"""What the stack files say, for assertions: values exactly as ``Pulumi.<stack>.yaml`` sets them."""

from __future__ import annotations

from functools import cache
from typing import Any

import yaml

from tools.stack_render import REPO_ROOT


@cache
def _stack_file(stack: str) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((REPO_ROOT / f"Pulumi.{stack}.yaml").read_text())[
        "config"
    ]
    return config


def setting(stack: str, key: str) -> Any:
    """A value exactly as the stack file sets it (``gcp:`` keys given in full)."""
    return _stack_file(stack)[key if ":" in key else f"cloudsql-backups:{key}"]
