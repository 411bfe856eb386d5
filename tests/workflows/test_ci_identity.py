"""CiIdentity: a pull request can only ever be the read-only preview identity, the deployer is only
reachable from the stack's GitHub environment on main, and neither can widen its own access.

The providers' attribute conditions are evaluated as CEL (``oidc.accepts``) against a table of GitHub
OIDC claim sets: other branches, environments, repositories and events are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import pulumi
import pytest
from cloudsql_backups.ci_identity import (
    DEFAULT_DEPLOYER_ROLES,
    DEFAULT_PREVIEW_ROLES,
    DEPLOYER_CUSTOM_ROLES,
    FORBIDDEN_CI_ROLES,
    GITHUB_OIDC_ISSUER,
    PREVIEW_CUSTOM_ROLES,
    PRIMITIVE_ROLES,
    PROJECT_IAM_ADMIN,
    SERVICE_ACCOUNT_USER,
    CiIdentity,
    CiIdentityArgs,
)

from tools.stack_render import RenderedStack, render

from .conftest import MOCK_PROJECT_NUMBER, PulumiHarness
from .oidc import PULL_REQUEST_REF, REPOSITORY, accepts, claims

PROJECT = "acme-scheduling-staging"
PROVIDER_TYPE = "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider"
ACCOUNT_TYPE = "gcp:serviceaccount/account:Account"
ACCOUNT_IAM_TYPE = "gcp:serviceaccount/iAMMember:IAMMember"
PROJECT_IAM_TYPE = "gcp:projects/iAMMember:IAMMember"
CUSTOM_ROLE_TYPE = "gcp:projects/iAMCustomRole:IAMCustomRole"
AUDIT_CONFIG_TYPE = "gcp:projects/iAMAuditConfig:IAMAuditConfig"
POOL = f"projects/{MOCK_PROJECT_NUMBER}/locations/global/workloadIdentityPools/github-actions"
RUNTIME_ACCOUNTS = (
    f"projects/{PROJECT}/serviceAccounts/sql-export-job-staging@{PROJECT}.iam.gserviceaccount.com",
    f"projects/{PROJECT}/serviceAccounts/sql-export-scheduler-staging@{PROJECT}.iam.gserviceaccount.com",
)
READ_VERBS = ("get", "list", "getIamPolicy")
EXPORTER_ROLE = f"projects/{PROJECT}/roles/cloudsqlExporterStaging"


def args_for(environment: str = "staging", **overrides: Any) -> CiIdentityArgs:
    settings: dict[str, Any] = {
        "runtime_service_accounts": RUNTIME_ACCOUNTS,
        "grantable_project_roles": (EXPORTER_ROLE,),
        **overrides,
    }
    return CiIdentityArgs(
        project=PROJECT, environment=environment, github_repository=REPOSITORY, **settings
    )


def deploy(harness: PulumiHarness, args: CiIdentityArgs) -> dict[str, Any]:
    def program() -> pulumi.Output[dict[str, Any]]:
        identity = CiIdentity("ci", args)
        return pulumi.Output.all(
            deploy_provider=identity.deploy_provider.name,
            deployer=identity.deployer_account.email,
            preview_provider=identity.preview_provider.name,
            preview=identity.preview_account.email,
        )

    outputs: dict[str, Any] = harness.run(program)
    return outputs


# --- the attribute conditions, evaluated as CEL -------------------------------------------------


@dataclass(frozen=True)
class Token:
    """One job's OIDC claims, with what each provider must decide."""

    id: str
    claims: dict[str, str]
    deploy: bool
    preview: bool


def tokens(github_environment: str, other_environment: str) -> list[Token]:
    pr_ref = PULL_REQUEST_REF
    return [
        Token("deploy-push-main", claims(environment=github_environment), True, False),
        Token(
            "export-dispatch-main",
            claims(environment=github_environment, event="workflow_dispatch"),
            True,
            False,
        ),
        Token(
            "other-branch",
            claims(environment=github_environment, ref="refs/heads/feature", event="push"),
            False,
            False,
        ),
        Token(
            "dispatch-from-other-branch",
            claims(environment=github_environment, ref="refs/heads/x", event="workflow_dispatch"),
            False,
            False,
        ),
        Token(
            "pull-request-claiming-the-environment",
            claims(environment=github_environment, ref=pr_ref, event="pull_request"),
            False,
            False,
        ),
        Token(
            "pull-request-target-on-main",
            claims(environment=github_environment, event="pull_request_target"),
            False,
            False,
        ),
        Token(
            "other-environment",
            claims(environment=other_environment),
            False,
            False,
        ),
        Token("main-without-environment", claims(), False, False),
        Token(
            "other-repository",
            claims(repository="evil/cloudsql-backups", environment=github_environment),
            False,
            False,
        ),
        Token(
            "repository-name-prefix",
            claims(repository=f"{REPOSITORY}-fork", environment=github_environment),
            False,
            False,
        ),
        Token("pull-request", claims(ref=pr_ref, event="pull_request"), False, True),
        Token(
            "pull-request-of-another-repository",
            claims(repository="evil/x", ref=pr_ref, event="pull_request"),
            False,
            False,
        ),
        Token(
            "pull-request-target",
            claims(ref="refs/heads/main", event="pull_request_target"),
            False,
            False,
        ),
        Token("missing-claims", {"repository": REPOSITORY}, False, False),
    ]


STACK_ENVIRONMENTS = {"staging": ("staging", "production"), "prod": ("production", "staging")}
TOKEN_CASES = [
    (stack, token)
    for stack, (own, other) in STACK_ENVIRONMENTS.items()
    for token in tokens(own, other)
]


@pytest.mark.parametrize(
    ("stack", "token"), TOKEN_CASES, ids=[f"{stack}-{token.id}" for stack, token in TOKEN_CASES]
)
def test_each_provider_accepts_exactly_its_own_jobs(stack: str, token: Token) -> None:
    args = args_for(stack)
    assert accepts(args.deploy_condition, token.claims) is token.deploy
    assert accepts(args.preview_condition, token.claims) is token.preview


@pytest.mark.parametrize("stack", sorted(STACK_ENVIRONMENTS))
def test_an_accepted_token_maps_to_the_one_subject_its_account_trusts(stack: str) -> None:
    # google.subject = assertion.sub, and each account trusts one subject: a token the preview
    # provider accepts can never be the deployer's principal, and the reverse.
    args = args_for(stack)
    for _, token in (case for case in TOKEN_CASES if case[0] == stack):
        if accepts(args.deploy_condition, token.claims):
            assert token.claims["sub"] == args.deploy_subject
        if accepts(args.preview_condition, token.claims):
            assert token.claims["sub"] == args.preview_subject
    assert args.deploy_subject != args.preview_subject


def test_conditions_pin_repository_subject_ref_and_event() -> None:
    args = args_for("prod")
    assert args.deploy_condition == (
        'assertion.repository == "acme/cloudsql-backups"'
        ' && assertion.sub == "repo:acme/cloudsql-backups:environment:production"'
        ' && assertion.ref == "refs/heads/main"'
        ' && assertion.event_name in ["push", "workflow_dispatch"]'
    )
    assert args.preview_condition == (
        'assertion.repository == "acme/cloudsql-backups"'
        ' && assertion.sub == "repo:acme/cloudsql-backups:pull_request"'
        ' && assertion.event_name == "pull_request"'
    )


# --- what the component registers ---------------------------------------------------------------


def test_two_providers_two_accounts_each_bound_to_one_subject(
    pulumi_harness: PulumiHarness,
) -> None:
    args = args_for("staging")
    outputs = deploy(pulumi_harness, args)

    providers = {
        p.inputs["workloadIdentityPoolProviderId"]: p
        for p in pulumi_harness.mocks.of_type(PROVIDER_TYPE)
    }
    assert providers["github"].inputs["attributeCondition"] == args.deploy_condition
    assert providers["github-pr"].inputs["attributeCondition"] == args.preview_condition
    for provider in providers.values():
        assert provider.inputs["oidc"]["issuerUri"] == GITHUB_OIDC_ISSUER
        assert provider.inputs["attributeMapping"]["google.subject"] == "assertion.sub"
    bindings = {
        b.inputs["serviceAccountId"]: b.inputs["member"]
        for b in pulumi_harness.mocks.of_type(ACCOUNT_IAM_TYPE)
        if b.inputs["role"] == "roles/iam.workloadIdentityUser"
    }
    deployer = f"projects/{PROJECT}/serviceAccounts/{outputs['deployer']}"
    preview = f"projects/{PROJECT}/serviceAccounts/{outputs['preview']}"
    assert bindings == {
        deployer: f"principal://iam.googleapis.com/{POOL}/subject/{args.deploy_subject}",
        preview: f"principal://iam.googleapis.com/{POOL}/subject/{args.preview_subject}",
    }
    assert outputs["deploy_provider"] == f"{POOL}/providers/github"
    assert outputs["preview_provider"] == f"{POOL}/providers/github-pr"


def _roles_of(harness: PulumiHarness, email: str) -> dict[str, dict[str, Any]]:
    return {
        args.inputs["role"]: args.inputs
        for args in harness.mocks.of_type(PROJECT_IAM_TYPE)
        if args.inputs["member"] == f"serviceAccount:{email}"
    }


def _custom_role_name(role_id: str) -> str:
    return f"projects/{PROJECT}/roles/{role_id}"


def test_deployer_roles_cannot_widen_its_access(pulumi_harness: PulumiHarness) -> None:
    outputs = deploy(pulumi_harness, args_for("staging"))

    granted = _roles_of(pulumi_harness, outputs["deployer"])
    custom = {_custom_role_name(role.role_id("staging")) for role in DEPLOYER_CUSTOM_ROLES}
    assert set(granted) == {*DEFAULT_DEPLOYER_ROLES, *custom, PROJECT_IAM_ADMIN}
    assert not set(granted) & (PRIMITIVE_ROLES | set(FORBIDDEN_CI_ROLES))
    assert granted[PROJECT_IAM_ADMIN]["condition"]["expression"] == (
        f"api.getAttribute('iam.googleapis.com/modifiedGrantsByRole', []).hasOnly(['{EXPORTER_ROLE}'])"
    )
    assert all("condition" not in inputs for role, inputs in granted.items() if role in custom)


def test_deployer_acts_only_as_the_runtime_accounts(pulumi_harness: PulumiHarness) -> None:
    outputs = deploy(pulumi_harness, args_for("staging"))

    acts_as = [
        b.inputs["serviceAccountId"]
        for b in pulumi_harness.mocks.of_type(ACCOUNT_IAM_TYPE)
        if b.inputs["role"] == SERVICE_ACCOUNT_USER
    ]
    assert sorted(acts_as) == sorted(RUNTIME_ACCOUNTS)
    assert SERVICE_ACCOUNT_USER not in _roles_of(pulumi_harness, outputs["deployer"])


def test_custom_roles_hold_no_iam_write_and_no_object_data(
    pulumi_harness: PulumiHarness,
) -> None:
    deploy(pulumi_harness, args_for("staging"))

    roles = {
        r.inputs["roleId"]: r.inputs["permissions"]
        for r in pulumi_harness.mocks.of_type(CUSTOM_ROLE_TYPE)
    }
    assert set(roles) == {
        role.role_id("staging") for role in (*DEPLOYER_CUSTOM_ROLES, *PREVIEW_CUSTOM_ROLES)
    }
    for role_id, permissions in roles.items():
        assert not [p for p in permissions if p.endswith(".setIamPolicy")], role_id
        # Listing names and sizes (the smoke test) is metadata; get/create/delete touch the dumps.
        object_data = [
            p
            for p in permissions
            if p.startswith("storage.objects.") and p != "storage.objects.list"
        ]
        assert not object_data, role_id
        assert not [p for p in permissions if p.startswith("iam.serviceAccountKeys.")], role_id
        assert not [p for p in permissions if p.startswith("iam.roles.")], role_id


def test_preview_identity_only_reads(pulumi_harness: PulumiHarness) -> None:
    outputs = deploy(pulumi_harness, args_for("prod"))

    granted = _roles_of(pulumi_harness, outputs["preview"])
    [reader] = PREVIEW_CUSTOM_ROLES
    assert set(granted) == {*DEFAULT_PREVIEW_ROLES, _custom_role_name(reader.role_id("prod"))}
    assert all(role.lower().endswith("viewer") for role in DEFAULT_PREVIEW_ROLES)
    assert all(permission.rsplit(".", 1)[1] in READ_VERBS for permission in reader.permissions)
    assert "roles/cloudsql.viewer" not in granted  # it includes cloudsql.instances.export
    preview_member = f"serviceAccount:{outputs['preview']}"
    assert not [
        b
        for b in pulumi_harness.mocks.of_type(ACCOUNT_IAM_TYPE)
        if b.inputs["member"] == preview_member
    ]


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", sorted(FORBIDDEN_CI_ROLES))
def test_roles_that_widen_access_are_refused(role: str) -> None:
    with pytest.raises(ValueError, match="refused for CI"):
        args_for(deployer_roles=(*DEFAULT_DEPLOYER_ROLES, role))


@pytest.mark.parametrize("role", sorted(PRIMITIVE_ROLES))
def test_basic_roles_are_refused(role: str) -> None:
    with pytest.raises(ValueError, match="basic role"):
        args_for(deployer_roles=(*DEFAULT_DEPLOYER_ROLES, role))


@pytest.mark.parametrize("role", ["roles/cloudsql.viewer", "roles/run.developer"])
def test_preview_gets_only_read_only_viewer_roles(role: str) -> None:
    with pytest.raises(ValueError, match="not a viewer role"):
        args_for(preview_roles=(*DEFAULT_PREVIEW_ROLES, role))


def test_unconditional_project_iam_admin_is_refused() -> None:
    with pytest.raises(ValueError, match="grantable_project_roles"):
        args_for(deployer_roles=(*DEFAULT_DEPLOYER_ROLES, PROJECT_IAM_ADMIN))


def test_granting_basic_roles_through_the_limited_iam_admin_is_refused() -> None:
    with pytest.raises(ValueError, match="basic role"):
        args_for(grantable_project_roles=("roles/owner",))


@pytest.mark.parametrize(
    "repository",
    ["acme", "acme/", "/cloudsql-backups", "acme/cloudsql-backups/extra", 'acme/x" || true'],
)
def test_repository_must_be_owner_slash_name(repository: str) -> None:
    # A malformed value would yield a CEL condition that matches nothing, or something unintended.
    with pytest.raises(ValueError, match="owner/name"):
        CiIdentityArgs(project=PROJECT, environment="staging", github_repository=repository)


def test_unknown_environment_is_refused() -> None:
    with pytest.raises(ValueError, match="environment must be one of"):
        args_for("dev")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pool_id", "gcp-github"),
        ("pool_id", "gh"),
        ("deploy_provider_id", "GitHub"),
        ("preview_provider_id", "github"),
    ],
)
def test_workload_identity_ids_follow_googles_rules(field: str, value: str) -> None:
    overrides: dict[str, Any] = {field: value}
    with pytest.raises(ValueError, match=r"provider_id|pool_id"):
        args_for(**overrides)


# --- the whole program -----------------------------------------------------------------------------


@cache
def rendered(stack: str) -> RenderedStack:
    return render(stack, preview=False)


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_stack_gives_ci_identities_no_escalation_path(stack: str) -> None:
    program = rendered(stack)
    emails = {
        a.outputs["email"]
        for a in program.of_type(ACCOUNT_TYPE)
        if "cloudsql-backups-" in a.outputs["email"]
    }
    assert len(emails) == 2
    members = {f"serviceAccount:{email}" for email in emails}
    project_grants = [
        r.inputs for r in program.of_type(PROJECT_IAM_TYPE) if r.inputs["member"] in members
    ]
    roles = {grant["role"] for grant in project_grants}
    assert not roles & (PRIMITIVE_ROLES | set(FORBIDDEN_CI_ROLES))
    [iam_admin] = [g for g in project_grants if g["role"] == PROJECT_IAM_ADMIN]
    assert f"roles/cloudsqlExporter{stack.capitalize()}'" in iam_admin["condition"]["expression"]
    runtime_accounts = {
        a.outputs["name"]
        for a in program.of_type(ACCOUNT_TYPE)
        if "sql-export-" in a.outputs["email"]
    }
    acts_as = {
        r.inputs["serviceAccountId"]
        for r in program.of_type(ACCOUNT_IAM_TYPE)
        if r.inputs["role"] == SERVICE_ACCOUNT_USER
    }
    assert acts_as == runtime_accounts
    assert len(runtime_accounts) == 2
    # No CI identity appears on any bucket grant: object access to the dumps is never CI's.
    bucket_members = {
        r.inputs["member"] for r in program.of_type("gcp:storage/bucketIAMMember:BucketIAMMember")
    }
    assert not bucket_members & members


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_stack_enables_storage_data_access_logs(stack: str) -> None:
    [audit] = rendered(stack).of_type(AUDIT_CONFIG_TYPE)
    assert audit.inputs["service"] == "storage.googleapis.com"
    log_types = {c["logType"] for c in audit.inputs["auditLogConfigs"]}
    assert "DATA_READ" in log_types
    assert not [c for c in audit.inputs["auditLogConfigs"] if c.get("exemptedMembers")]


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_reads_of_the_backup_bucket_by_others_page(stack: str) -> None:
    program = rendered(stack)
    [alert] = [
        r
        for r in program.of_type("gcp:monitoring/alertPolicy:AlertPolicy")
        if r.name == "backup-read-audit-unexpected-read"
    ]
    log_filter = alert.inputs["conditions"][0]["conditionMatchedLog"]["filter"]
    bucket = program.one("gcp:storage/bucket:Bucket").outputs["name"]
    assert f'resource.labels.bucket_name="{bucket}"' in log_filter
    assert 'protoPayload.methodName="storage.objects.get"' in log_filter
    assert "cloudaudit.googleapis.com%2Fdata_access" in log_filter
    expected = {
        f"sql-export-job-{stack}@acme-scheduling-{stack}.iam.gserviceaccount.com",
        f"restore-drill@acme-scheduling-{stack}.iam.gserviceaccount.com",
    }
    assert {
        term.split("!=")[1].strip('"') for term in log_filter.split(" AND ") if "!=" in term
    } == expected
    assert alert.inputs["notificationChannels"]
    assert alert.inputs["alertStrategy"]["notificationRateLimit"]["period"]
