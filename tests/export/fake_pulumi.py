#!/usr/bin/env python3
"""A fake `pulumi` CLI for the manual-export tests: only `pulumi stack output`.

Like pulumi 3.x it takes `[property-name] [-j|--json] [--show-secrets] [-s|--stack NAME]`,
rejects unknown flags, prints the outputs of the stacks in the JSON file named by
$FAKE_PULUMI_STACKS (an object: stack name -> outputs), and fails like pulumi for a stack that
does not exist ("error: no stack named 'X' found", exit 255). Each argv is appended, as one JSON
line, to the file named by $FAKE_PULUMI_CALLS. The tests copy this file in under the name `pulumi`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

PULUMI_ERROR_EXIT = 255
FLAGS_WITH_VALUE = {"-s", "--stack"}
FLAGS_WITHOUT_VALUE = {"-j", "--json", "--show-secrets"}


class PulumiError(Exception):
    """pulumi's "error: ..." line and exit code."""

    def __init__(self, message: str, code: int = PULUMI_ERROR_EXIT) -> None:
        super().__init__(message)
        self.code = code


def parse_stack_output(arguments: list[str]) -> tuple[str | None, bool, str | None]:
    """(stack, as_json, property) from the arguments after `stack output`."""
    stack: str | None = None
    as_json = False
    positionals: list[str] = []
    rest = list(arguments)
    while rest:
        token = rest.pop(0)
        name, has_value, value = token.partition("=")
        if name in FLAGS_WITH_VALUE:
            if not has_value:
                if not rest:
                    raise PulumiError(f"flag needs an argument: {name}")
                value = rest.pop(0)
            stack = value
        elif token in FLAGS_WITHOUT_VALUE:
            as_json = as_json or token in ("-j", "--json")
        elif token.startswith("-"):
            raise PulumiError(f"unknown flag: {token}", code=1)
        else:
            positionals.append(token)
    if len(positionals) > 1:
        raise PulumiError(f"accepts at most 1 arg(s), received {len(positionals)}", code=1)
    return stack, as_json, positionals[0] if positionals else None


def stack_output(arguments: list[str]) -> None:
    stack, as_json, prop = parse_stack_output(arguments)
    if not as_json or stack is None:
        raise PulumiError("fake pulumi only simulates `stack output --json --stack NAME`", 3)
    stacks: dict[str, Any] = json.loads(Path(os.environ["FAKE_PULUMI_STACKS"]).read_text())
    if stack not in stacks:
        raise PulumiError(f"no stack named '{stack}' found")
    outputs = stacks[stack]
    if prop is not None:
        if prop not in outputs:
            raise PulumiError(f"current stack does not have output property '{prop}'")
        outputs = outputs[prop]
    print(json.dumps(outputs, indent=2))


def main(argv: list[str]) -> int:
    with Path(os.environ["FAKE_PULUMI_CALLS"]).open("a") as calls:
        calls.write(json.dumps(argv) + "\n")
    try:
        if argv[:2] != ["stack", "output"]:
            raise PulumiError(f"fake pulumi does not simulate {' '.join(argv)}", 3)
        stack_output(argv[2:])
    except PulumiError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
