"""CI identity rules: whom a Workload Identity provider trusting GitHub accepts, and which IAM roles
would let an identity of the stack widen its own access.

GitHub signs every repository's tokens with one issuer, so a provider must pin the repository; and
a repository alone admits any branch, workflow or event, including a pull request that edits its
own workflow. The rule therefore wants the attribute condition to be a conjunction with one term
pinning the repository and one pinning the job's subject, environment, ref or workflow
(https://cloud.google.com/iam/docs/workload-identity-federation-with-deployment-pipelines;
claims: https://docs.github.com/en/actions/reference/security/oidc).

Conditions are read as CEL: top-level ``||`` and ``&&`` outside strings, brackets and parentheses.
Only terms of the form ``assertion.CLAIM == "literal"`` (either side), ``assertion.CLAIM in
["literal", ...]``, or the same on an ``attribute.X`` mapped to exactly ``assertion.CLAIM``, count as
pins; anything else (a parenthesised disjunction, ``startsWith``) pins nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from iam import grants, is_iam_grant
from policy_kit import Check, Config, Resource, resource_policy, string_list
from property_access import describe
from pulumi_policy import ResourceValidationPolicy, Severity

PROVIDER = "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
REPOSITORY_CLAIMS = ("repository", "repository_id")
JOB_CLAIMS = ("sub", "environment", "ref", "job_workflow_ref", "workflow_ref")
ROLE_ADMIN_ROLES = ("roles/iam.roleAdmin", "roles/iam.organizationRoleAdmin")
IMPERSONATION_ROLES = (
    "roles/iam.serviceAccountUser",
    "roles/iam.serviceAccountTokenCreator",
    "roles/iam.serviceAccountAdmin",
)
# Grants on a whole project, folder or organization (as opposed to one service account).
_HIERARCHY_GRANT = re.compile(r"^gcp:(?:projects|folder|organizations)/\w+:\w*(?:IAM|Iam)\w+$")

_LITERAL = r'(?:"[^"\\]*"|\'[^\'\\]*\')'
_CLAIM = r"(?P<scope>assertion|attribute)\.(?P<claim>\w+)"
_PIN_FORMS = (
    re.compile(rf"^{_CLAIM}\s*==\s*{_LITERAL}$"),
    re.compile(rf"^{_LITERAL}\s*==\s*{_CLAIM}$"),
    re.compile(rf"^{_CLAIM}\s+in\s+\[\s*{_LITERAL}(?:\s*,\s*{_LITERAL})*\s*\]$"),
)
_OPENING, _CLOSING = "([{", ")]}"


def _outside_strings(text: str) -> Iterator[tuple[int, int]]:
    """(index, bracket depth) for each character of ``text`` outside string literals; the depth
    counts the bracket at the index itself (an opening one is inside, a closing one outside)."""
    depth, quote = 0, ""
    for index, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
            continue
        if char in "\"'":
            quote = char
            continue
        if char in _OPENING:
            depth += 1
        elif char in _CLOSING:
            depth -= 1
        yield index, depth


def split_top_level(expression: str, operator: str) -> list[str]:
    """``expression`` split on ``operator`` where it is outside strings and brackets."""
    parts, start = [], 0
    for index, depth in _outside_strings(expression):
        if index >= start and depth == 0 and expression.startswith(operator, index):
            parts.append(expression[start:index].strip())
            start = index + len(operator)
    parts.append(expression[start:].strip())
    return parts


def _closing_index(text: str) -> int:
    """Index of the bracket closing the one ``text`` opens with (-1 if unbalanced)."""
    return next(
        (
            index
            for index, depth in _outside_strings(text)
            if depth == 0 and text[index] in _CLOSING
        ),
        -1,
    )


def _unwrapped(term: str) -> str:
    """``term`` without parentheses that enclose all of it."""
    while term.startswith("(") and _closing_index(term) == len(term) - 1:
        term = term[1:-1].strip()
    return term


def pinned_claims(condition: str, mapping: dict[str, str]) -> set[str]:
    """The assertion claims a condition pins to literals in every accepted token."""
    if len(split_top_level(condition, "||")) > 1:
        return set()
    pinned = set()
    for term in split_top_level(_unwrapped(condition), "&&"):
        for form in _PIN_FORMS:
            match = form.match(_unwrapped(term))
            if match is None:
                continue
            claim = match.group("claim")
            if match.group("scope") == "attribute":
                source = mapping.get(f"attribute.{claim}", "")
                claim = (
                    source.removeprefix("assertion.")
                    if re.fullmatch(r"assertion\.\w+", source)
                    else ""
                )
            if claim:
                pinned.add(claim)
    return pinned


def _trusts_github(provider: Resource) -> str | None:
    issuer = provider.props.at("oidc.issuerUri").value
    if issuer == GITHUB_ISSUER:
        return None
    return f"issuer {describe(issuer)} is not GitHub Actions"


def _pins_repository_and_job(provider: Resource, config: Config) -> Iterator[str]:
    condition = provider.props.at("attributeCondition").value
    mapping = provider.props.at("attributeMapping").value or {}
    pinned = pinned_claims(str(condition or ""), {str(k): str(v) for k, v in mapping.items()})
    if not pinned & set(REPOSITORY_CLAIMS):
        yield (
            f"attributeCondition = {describe(condition)}: does not pin the repository; GitHub "
            "signs every repository's tokens, so any repository could authenticate"
        )
    if not pinned & set(config["jobClaims"]):
        yield (
            f"attributeCondition = {describe(condition)}: pins none of "
            f"{', '.join(config['jobClaims'])}; any branch, workflow or pull request of the "
            "repository could authenticate"
        )


def _no_forbidden_role(setting: str, reason: str) -> Check:
    def check(resource: Resource, config: Config) -> Iterator[str]:
        forbidden = set(config[setting])
        for grant in grants(resource):
            if not grant.role.unknown and grant.role.value in forbidden:
                yield f"{grant.role.path} = {describe(grant.role.value)}: {reason}"

    return check


def _is_hierarchy_grant(type_token: str) -> bool:
    return is_iam_grant(type_token) and _HIERARCHY_GRANT.match(type_token) is not None


def policies() -> list[ResourceValidationPolicy]:
    """The CI identity rules, in the order the policy reference lists them."""
    return [
        resource_policy(
            name="iam-workload-identity-provider-pins-github-job",
            description=(
                "A Workload Identity provider that trusts GitHub Actions has an attribute "
                "condition that is a conjunction pinning the repository and the job (its sub, "
                "environment, ref or workflow) to literals."
            ),
            resource_types={PROVIDER},
            scope=_trusts_github,
            checks=[_pins_repository_and_job],
            settings=[
                string_list(
                    "jobClaims",
                    JOB_CLAIMS,
                    "Claims that identify the job; one must be pinned.",
                    at_least_one=True,
                )
            ],
            severity=Severity.CRITICAL,
            remediation=(
                "Pin the repository and the environment or ref, e.g. assertion.repository == "
                '"owner/name" && assertion.sub == "repo:owner/name:environment:production" && '
                'assertion.ref == "refs/heads/main".'
            ),
        ),
        resource_policy(
            name="iam-member-no-role-admin",
            description=(
                "No IAM grant of the stack gives roles/iam.roleAdmin or "
                "roles/iam.organizationRoleAdmin: an identity that edits custom roles can add "
                "permissions to the roles it holds or grants."
            ),
            resource_types=is_iam_grant,
            checks=[
                _no_forbidden_role(
                    "forbiddenRoles",
                    "lets the identity edit custom roles, including its own; a human manages "
                    "custom roles",
                )
            ],
            settings=[
                string_list(
                    "forbiddenRoles", ROLE_ADMIN_ROLES, "Roles no grant may use.", at_least_one=True
                )
            ],
            severity=Severity.CRITICAL,
            remediation="Remove the grant; have a human apply custom-role changes.",
        ),
        resource_policy(
            name="iam-project-member-no-service-account-impersonation",
            description=(
                "No project-, folder- or organization-level IAM grant of the stack gives "
                "roles/iam.serviceAccountUser, roles/iam.serviceAccountTokenCreator or "
                "roles/iam.serviceAccountAdmin: at that level they reach every service account."
            ),
            resource_types=_is_hierarchy_grant,
            checks=[
                _no_forbidden_role(
                    "forbiddenRoles",
                    "at this level it acts as (or controls) every service account; grant it on "
                    "the one service account that needs it",
                )
            ],
            settings=[
                string_list(
                    "forbiddenRoles",
                    IMPERSONATION_ROLES,
                    "Roles no project-, folder- or organization-level grant may use.",
                    at_least_one=True,
                )
            ],
            severity=Severity.CRITICAL,
            remediation=(
                "Grant the role on the service account (gcp.serviceaccount.IAMMember) instead."
            ),
        ),
    ]
