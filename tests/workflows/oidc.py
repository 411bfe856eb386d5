"""GitHub OIDC claims as GitHub mints them, and Google's verdict on them under a provider's CEL.

Claim shapes follow GitHub's OIDC reference, https://docs.github.com/en/actions/reference/security/oidc:
``sub`` is ``repo:OWNER/REPO:environment:NAME`` for a job with an environment,
``repo:OWNER/REPO:pull_request`` for a pull-request job without one, and ``repo:OWNER/REPO:ref:REF``
otherwise. Conditions are compiled and evaluated by cel-python, a CEL implementation: the tests run
the expression Google evaluates rather than re-reading it.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

import celpy
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError
from cloudsql_backups.ci_identity import GITHUB_OIDC_ISSUER

REPOSITORY = "acme/cloudsql-backups"
MAIN = "refs/heads/main"
PULL_REQUEST_REF = "refs/pull/7/merge"


@cache
def _compiled(expression: str) -> celpy.Runner:
    environment = celpy.Environment()
    return environment.program(environment.compile(expression))


def accepts(condition: str, claims: Mapping[str, str]) -> bool:
    """Whether Google would accept a token with ``claims``: an evaluation error is a refusal."""
    try:
        result = _compiled(condition).evaluate({"assertion": json_to_cel(dict(claims))})
    except CELEvalError:
        return False
    return result == celpy.celtypes.BoolType(True)


def claims(
    *,
    repository: str = REPOSITORY,
    environment: str | None = None,
    ref: str = MAIN,
    event: str = "push",
) -> dict[str, str]:
    """The claims GitHub mints for a job (those the conditions may read)."""
    if environment is not None:
        sub = f"repo:{repository}:environment:{environment}"
    elif event == "pull_request":
        sub = f"repo:{repository}:pull_request"
    else:
        sub = f"repo:{repository}:ref:{ref}"
    minted = {
        "sub": sub,
        "repository": repository,
        "repository_owner": repository.split("/", maxsplit=1)[0],
        "ref": ref,
        "event_name": event,
        "iss": GITHUB_OIDC_ISSUER,
    }
    if environment is not None:
        minted["environment"] = environment
    return minted
