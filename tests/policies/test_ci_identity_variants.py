"""The CI identity rules (policies/ci_identity.py) through the real analyzer: each variant is one edit
of a real stack's CI identity, rejected at mandatory level by the intended policy on the edited
resource; the compliant forms the rules must accept pass untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.policies.harness import Analyzers, rendered
from tests.policies.stack_edits import edit, put
from tools.stack_render import RenderedStack

PROVIDER = "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider"
PROJECT_MEMBER = "gcp:projects/iAMMember:IAMMember"
ACCOUNT_MEMBER = "gcp:serviceaccount/iAMMember:IAMMember"
DEPLOY_PROVIDER = "ci-deployer-provider"
PREVIEW_PROVIDER = "ci-preview-provider"
DEPLOYER_GRANT = "ci-deployer-run-admin"
PREVIEW_GRANT = "ci-preview-run-viewer"
PINS_JOB = "iam-workload-identity-provider-pins-github-job"
NO_ROLE_ADMIN = "iam-member-no-role-admin"
NO_IMPERSONATION = "iam-project-member-no-service-account-impersonation"
NO_BASIC_ROLES = "iam-member-no-basic-roles"
REPO = '"acme/cloudsql-backups"'
ENV_SUB = '"repo:acme/cloudsql-backups:environment:production"'

Edit = Callable[[dict[str, Any]], None]


def setting(path: str, value: Any) -> Edit:
    return lambda props: put(props, path, value)


def condition(text: str) -> Edit:
    return setting("attributeCondition", text)


# (id, type, resource name, edit, policy that must reject it)
VARIANTS: list[tuple[str, str, str, Edit, str]] = [
    (
        "deployer-trusts-the-whole-repository",
        PROVIDER,
        DEPLOY_PROVIDER,
        condition(f"assertion.repository == {REPO}"),
        PINS_JOB,
    ),
    (
        "deployer-pin-undone-by-a-disjunction",
        PROVIDER,
        DEPLOY_PROVIDER,
        condition(f"assertion.repository == {REPO} && assertion.sub == {ENV_SUB} || true"),
        PINS_JOB,
    ),
    (
        "deployer-repository-inside-a-disjunction",
        PROVIDER,
        DEPLOY_PROVIDER,
        condition(
            f'(assertion.repository == {REPO} || assertion.repository == "evil/x") && assertion.sub == {ENV_SUB}'
        ),
        PINS_JOB,
    ),
    (
        "deployer-ref-by-prefix-only",
        PROVIDER,
        DEPLOY_PROVIDER,
        condition(f'assertion.repository == {REPO} && assertion.ref.startsWith("refs/heads/")'),
        PINS_JOB,
    ),
    (
        "preview-pins-the-job-but-not-the-repository",
        PROVIDER,
        PREVIEW_PROVIDER,
        condition('assertion.event_name == "pull_request" && assertion.ref == "refs/heads/main"'),
        PINS_JOB,
    ),
    (
        "preview-without-condition",
        PROVIDER,
        PREVIEW_PROVIDER,
        condition(""),
        PINS_JOB,
    ),
    (
        "deployer-role-admin",
        PROJECT_MEMBER,
        DEPLOYER_GRANT,
        setting("role", "roles/iam.roleAdmin"),
        NO_ROLE_ADMIN,
    ),
    (
        "preview-organization-role-admin",
        PROJECT_MEMBER,
        PREVIEW_GRANT,
        setting("role", "roles/iam.organizationRoleAdmin"),
        NO_ROLE_ADMIN,
    ),
    (
        "deployer-acts-as-every-account",
        PROJECT_MEMBER,
        DEPLOYER_GRANT,
        setting("role", "roles/iam.serviceAccountUser"),
        NO_IMPERSONATION,
    ),
    (
        "deployer-mints-tokens-of-every-account",
        PROJECT_MEMBER,
        DEPLOYER_GRANT,
        setting("role", "roles/iam.serviceAccountTokenCreator"),
        NO_IMPERSONATION,
    ),
    (
        "deployer-administers-every-account",
        PROJECT_MEMBER,
        DEPLOYER_GRANT,
        setting("role", "roles/iam.serviceAccountAdmin"),
        NO_IMPERSONATION,
    ),
    (
        "deployer-editor",
        PROJECT_MEMBER,
        DEPLOYER_GRANT,
        setting("role", "roles/editor"),
        NO_BASIC_ROLES,
    ),
    (
        "preview-viewer",
        PROJECT_MEMBER,
        PREVIEW_GRANT,
        setting("role", "roles/viewer"),
        NO_BASIC_ROLES,
    ),
    (
        "role-admin-on-a-runtime-account",
        ACCOUNT_MEMBER,
        "ci-deployer-acts-as-0",
        setting("role", "roles/iam.roleAdmin"),
        NO_ROLE_ADMIN,
    ),
]


def _urn(stack: RenderedStack, type_token: str, name: str) -> str:
    [urn] = [r.urn for r in stack.resources if r.type == type_token and r.name == name]
    return urn


@pytest.mark.parametrize(
    ("variant", "type_token", "name", "change", "policy"), VARIANTS, ids=[v[0] for v in VARIANTS]
)
@pytest.mark.parametrize("preview", [True, False], ids=["first-preview", "update"])
def test_ci_identity_variant_is_rejected(
    analyzers: Analyzers,
    variant: str,
    type_token: str,
    name: str,
    change: Edit,
    policy: str,
    preview: bool,
) -> None:
    stack = edit(rendered("prod", preview=preview), type_token, change, name)

    result = analyzers.verdicts(stack)

    found = [v for v in result.of_policy(policy) if v.urn == _urn(stack, type_token, name)]
    assert found, f"{policy} did not reject {variant}: {result.violations}"
    assert {v.level for v in found} == {"mandatory"}


ACCEPTED_CONDITIONS = {
    "mapped-attributes": (
        'attribute.repository == "acme/cloudsql-backups" && attribute.ref == "refs/heads/main"'
    ),
    "reversed-and-parenthesised": f'({REPO} == assertion.repository) && (assertion.environment in ["production"])',
    "repository-id-and-workflow": (
        'assertion.repository_id == "123456" && assertion.job_workflow_ref == '
        '"acme/cloudsql-backups/.github/workflows/deploy.yml@refs/heads/main"'
    ),
}


@pytest.mark.parametrize("text", ACCEPTED_CONDITIONS.values(), ids=list(ACCEPTED_CONDITIONS))
def test_conditions_that_pin_repository_and_job_are_accepted(
    analyzers: Analyzers, text: str
) -> None:
    stack = edit(rendered("staging", preview=True), PROVIDER, condition(text), DEPLOY_PROVIDER)

    assert analyzers.verdicts(stack).of_policy(PINS_JOB) == []


def test_an_attribute_mapped_from_something_else_pins_nothing(analyzers: Analyzers) -> None:
    def remap(props: dict[str, Any]) -> None:
        props["attributeMapping"]["attribute.ref"] = "assertion.actor"
        props["attributeCondition"] = (
            f'assertion.repository == {REPO} && attribute.ref == "refs/heads/main"'
        )

    stack = edit(rendered("staging", preview=True), PROVIDER, remap, DEPLOY_PROVIDER)

    assert analyzers.verdicts(stack).of_policy(PINS_JOB)


def test_a_provider_for_another_issuer_is_not_judged(analyzers: Analyzers) -> None:
    def other_issuer(props: dict[str, Any]) -> None:
        props["oidc"]["issuerUri"] = "https://gitlab.com"
        props["attributeCondition"] = 'assertion.namespace_path == "acme"'

    stack = edit(rendered("staging", preview=True), PROVIDER, other_issuer, DEPLOY_PROVIDER)

    assert analyzers.verdicts(stack).of_policy(PINS_JOB) == []


def test_acting_as_one_runtime_account_is_not_project_wide(analyzers: Analyzers) -> None:
    # The real stack grants serviceAccountUser on the two runtime accounts: that is allowed.
    stack = rendered("prod", preview=False)
    assert [
        r
        for r in stack.resources
        if r.type == ACCOUNT_MEMBER and r.name.startswith("ci-deployer-acts-as-")
    ]
    assert analyzers.verdicts(stack).of_policy(NO_IMPERSONATION) == []
