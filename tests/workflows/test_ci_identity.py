"""CiIdentity: only this repository's GitHub tokens can impersonate the deployer, which holds no
basic role and no unconditional power over project IAM."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest
from cloudsql_backups.ci_identity import (
    DEFAULT_DEPLOYER_ROLES,
    GITHUB_OIDC_ISSUER,
    PRIMITIVE_ROLES,
    PROJECT_IAM_ADMIN,
    CiIdentity,
    CiIdentityArgs,
)

from .conftest import MOCK_PROJECT_NUMBER, PulumiHarness

PROJECT = "acme-scheduling-staging"
REPOSITORY = "acme/cloudsql-backups"
POOL_TYPE = "gcp:iam/workloadIdentityPool:WorkloadIdentityPool"
PROVIDER_TYPE = "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider"
ACCOUNT_TYPE = "gcp:serviceaccount/account:Account"
ACCOUNT_IAM_TYPE = "gcp:serviceaccount/iAMMember:IAMMember"
PROJECT_IAM_TYPE = "gcp:projects/iAMMember:IAMMember"
DEPLOYER_MEMBER = f"serviceAccount:cloudsql-backups-deployer@{PROJECT}.iam.gserviceaccount.com"


def deploy(harness: PulumiHarness, args: CiIdentityArgs) -> dict[str, Any]:
    """Create the component under the mocks and return its resolved outputs."""

    def program() -> pulumi.Output[dict[str, Any]]:
        identity = CiIdentity("ci", args)
        return pulumi.Output.all(
            workload_identity_provider=identity.workload_identity_provider,
            service_account_email=identity.service_account_email,
            principal_set=identity.principal_set,
        )

    outputs: dict[str, Any] = harness.run(program)
    return outputs


def project_roles(harness: PulumiHarness) -> dict[str, dict[str, Any]]:
    return {args.inputs["role"]: args.inputs for args in harness.mocks.of_type(PROJECT_IAM_TYPE)}


def test_provider_accepts_only_this_repositorys_github_tokens(
    pulumi_harness: PulumiHarness,
) -> None:
    deploy(pulumi_harness, CiIdentityArgs(project=PROJECT, github_repository=REPOSITORY))

    [provider] = pulumi_harness.mocks.of_type(PROVIDER_TYPE)
    assert (
        provider.inputs["attributeCondition"] == 'assertion.repository == "acme/cloudsql-backups"'
    )
    assert provider.inputs["oidc"]["issuerUri"] == GITHUB_OIDC_ISSUER
    # The condition and the principalSet refer to attribute.repository: it must be mapped.
    assert provider.inputs["attributeMapping"]["attribute.repository"] == "assertion.repository"
    assert provider.inputs["attributeMapping"]["google.subject"] == "assertion.sub"
    assert provider.inputs["workloadIdentityPoolId"] == "github-actions"


def test_only_the_repositorys_principal_set_may_impersonate_the_deployer(
    pulumi_harness: PulumiHarness,
) -> None:
    outputs = deploy(pulumi_harness, CiIdentityArgs(project=PROJECT, github_repository=REPOSITORY))

    pool_name = (
        f"projects/{MOCK_PROJECT_NUMBER}/locations/global/workloadIdentityPools/github-actions"
    )
    expected_member = (
        f"principalSet://iam.googleapis.com/{pool_name}/attribute.repository/acme/cloudsql-backups"
    )
    [binding] = pulumi_harness.mocks.of_type(ACCOUNT_IAM_TYPE)
    assert binding.inputs["role"] == "roles/iam.workloadIdentityUser"
    assert binding.inputs["member"] == expected_member
    [account] = pulumi_harness.mocks.of_type(ACCOUNT_TYPE)
    assert binding.inputs["serviceAccountId"] == (
        f"projects/{PROJECT}/serviceAccounts/{account.inputs['accountId']}"
        f"@{PROJECT}.iam.gserviceaccount.com"
    )
    assert outputs["principal_set"] == expected_member


def test_outputs_are_what_google_github_actions_auth_needs(pulumi_harness: PulumiHarness) -> None:
    outputs = deploy(pulumi_harness, CiIdentityArgs(project=PROJECT, github_repository=REPOSITORY))

    assert outputs["workload_identity_provider"] == (
        f"projects/{MOCK_PROJECT_NUMBER}/locations/global/workloadIdentityPools/github-actions"
        "/providers/github"
    )
    assert outputs["service_account_email"] == (
        f"cloudsql-backups-deployer@{PROJECT}.iam.gserviceaccount.com"
    )


def test_deployer_gets_the_documented_roles_and_no_basic_role(
    pulumi_harness: PulumiHarness,
) -> None:
    deploy(pulumi_harness, CiIdentityArgs(project=PROJECT, github_repository=REPOSITORY))

    granted = project_roles(pulumi_harness)
    assert set(granted) == set(DEFAULT_DEPLOYER_ROLES)
    assert not set(granted) & PRIMITIVE_ROLES
    assert PROJECT_IAM_ADMIN not in granted
    assert {inputs["member"] for inputs in granted.values()} == {DEPLOYER_MEMBER}
    assert {inputs["project"] for inputs in granted.values()} == {PROJECT}


def test_project_iam_admin_is_limited_to_the_roles_the_stack_grants(
    pulumi_harness: PulumiHarness,
) -> None:
    exporter_role = f"projects/{PROJECT}/roles/cloudsqlExporter"
    args = CiIdentityArgs(
        project=PROJECT, github_repository=REPOSITORY, grantable_project_roles=(exporter_role,)
    )
    deploy(pulumi_harness, args)

    condition = project_roles(pulumi_harness)[PROJECT_IAM_ADMIN]["condition"]
    assert condition["expression"] == (
        "api.getAttribute('iam.googleapis.com/modifiedGrantsByRole', [])"
        f".hasOnly(['{exporter_role}'])"
    )


def test_every_child_is_parented_to_and_named_from_the_component(
    pulumi_harness: PulumiHarness,
) -> None:
    deploy(pulumi_harness, CiIdentityArgs(project=PROJECT, github_repository=REPOSITORY))

    children = [urn for urn in pulumi_harness.urns() if "$gcp:" in urn]
    # Pool, provider, account, workloadIdentityUser binding and one binding per role.
    assert len(children) == 4 + len(DEFAULT_DEPLOYER_ROLES)
    for urn in children:
        qualified_type, name = urn.split("::")[2:4]
        assert qualified_type.startswith("cloudsql-backups:ci:CiIdentity$"), urn
        assert name.startswith("ci-"), urn


@pytest.mark.parametrize("role", sorted(PRIMITIVE_ROLES))
def test_basic_roles_are_refused(role: str) -> None:
    with pytest.raises(ValueError, match="basic role"):
        CiIdentityArgs(
            project=PROJECT,
            github_repository=REPOSITORY,
            deployer_roles=(*DEFAULT_DEPLOYER_ROLES, role),
        )


def test_unconditional_project_iam_admin_is_refused() -> None:
    with pytest.raises(ValueError, match="grantable_project_roles"):
        CiIdentityArgs(
            project=PROJECT,
            github_repository=REPOSITORY,
            deployer_roles=(*DEFAULT_DEPLOYER_ROLES, PROJECT_IAM_ADMIN),
        )


def test_granting_basic_roles_through_the_limited_iam_admin_is_refused() -> None:
    with pytest.raises(ValueError, match="basic role"):
        CiIdentityArgs(
            project=PROJECT, github_repository=REPOSITORY, grantable_project_roles=("roles/owner",)
        )


@pytest.mark.parametrize(
    "repository",
    ["acme", "acme/", "/cloudsql-backups", "acme/cloudsql-backups/extra", 'acme/x" || true'],
)
def test_repository_must_be_owner_slash_name(repository: str) -> None:
    # A malformed value would yield a CEL condition that matches nothing, or something unintended.
    with pytest.raises(ValueError, match="owner/name"):
        CiIdentityArgs(project=PROJECT, github_repository=repository)


@pytest.mark.parametrize(
    ("field", "value"),
    [("pool_id", "gcp-github"), ("pool_id", "gh"), ("provider_id", "GitHub")],
)
def test_workload_identity_ids_follow_googles_rules(field: str, value: str) -> None:
    overrides: dict[str, Any] = {field: value}
    with pytest.raises(ValueError, match=field):
        CiIdentityArgs(project=PROJECT, github_repository=REPOSITORY, **overrides)
