"""Generate the README's config reference table from ``Pulumi.yaml`` and the settings model.

``python -m tools.config_reference`` rewrites the block between the markers in README.md; a test
fails when the committed README is out of date.
"""

from __future__ import annotations

import re
import sys
import typing
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
README = REPO_ROOT / "README.md"
BEGIN = "<!-- config-reference:begin -->"
END = "<!-- config-reference:end -->"


def _settings_fields() -> dict[str, Any]:
    sys.path.insert(0, str(REPO_ROOT / "infra"))
    from cloudsql_backups.config import StackSettings  # noqa: PLC0415 - infra/ is the program's root

    return dict(StackSettings.model_fields)


def _allowed(field: Any) -> str:
    literal = [arg for arg in typing.get_args(field.annotation) if isinstance(arg, str)]
    if typing.get_origin(field.annotation) is typing.Literal and literal:
        return ", ".join(literal)
    bounds = {
        name: getattr(item, name)
        for item in field.metadata
        for name in ("ge", "le", "min_length")
        if hasattr(item, name)
    }
    if "ge" in bounds and "le" in bounds:
        return f"{bounds['ge']}..{bounds['le']}"
    if bounds.get("min_length"):
        return "non-empty list"
    return ""


def _cell(value: Any) -> str:
    if value is None:
        return "required"
    text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
    return f"`{text}`" if text else "`''`"


def reference_table() -> str:
    declared = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())["config"]
    fields = _settings_fields()
    rows = [
        "| key | type | default | allowed | why |",
        "| --- | --- | --- | --- | --- |",
        "| `gcp:project` | string | required | a project ID | The project everything is created in. |",
        "| `gcp:region` | string | required | a Cloud SQL region | Region of the instance, job and scheduler. |",
    ]
    for key, spec in declared.items():
        # `|` ends a cell and `<name>` reads as an HTML tag: escape both.
        description = (
            re.sub(r"\s+", " ", spec["description"]).replace("|", "\\|").replace("<", "&lt;")
        )
        rows.append(
            f"| `cloudsql-backups:{key}` | {spec['type']} | {_cell(spec.get('default'))} "
            f"| {_allowed(fields[key])} | {description} |"
        )
    return "\n".join(rows)


def render_readme(text: str) -> str:
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return f"{text[:start]}\n{reference_table()}\n{text[end:]}"


def main() -> None:
    README.write_text(render_readme(README.read_text()))


if __name__ == "__main__":
    main()
