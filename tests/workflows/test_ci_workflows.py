"""The workflows and the CI identities fit together: a pull request can obtain only a preview identity,
the deploy and export jobs mint exactly the tokens their stack's deployer accepts, and the export runs
only from main behind the stack's environment.

Each job's token is built the way GitHub mints it (``oidc.claims``) from the job's event, ref and
environment, and judged by the stack's real attribute conditions (``CiIdentityArgs``) evaluated as CEL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from cloudsql_backups.ci_identity import GITHUB_ENVIRONMENTS, CiIdentityArgs

from .conftest import Workflow, load_workflow
from .oidc import MAIN, PULL_REQUEST_REF, REPOSITORY, accepts, claims
from .test_workflows import AUTH_ACTION, AUTH_INPUTS, identity_variable, jobs, steps_using

PULL_REQUEST_EVENTS = ("pull_request", "pull_request_target")
DEPLOYER_VARIABLE = re.compile(r"\bvars\.GCP_(?:WORKLOAD_IDENTITY_PROVIDER|SERVICE_ACCOUNT)_\w+")
CHOSEN_ENVIRONMENT = re.compile(
    r"\$\{\{\s*inputs\.stack == '(\w+)' && '([\w.-]+)' \|\| '([\w.-]+)'\s*\}\}"
)
STACKS = tuple(sorted(GITHUB_ENVIRONMENTS))


def stack_args(stack: str) -> CiIdentityArgs:
    return CiIdentityArgs(
        project=f"acme-scheduling-{stack}", environment=stack, github_repository=REPOSITORY
    )


def events(workflow: Workflow) -> set[str]:
    triggers = workflow["on"]
    return {triggers} if isinstance(triggers, str) else set(triggers)


def mints_tokens(job: dict[str, Any]) -> bool:
    permissions = job.get("permissions", {})
    return isinstance(permissions, dict) and permissions.get("id-token") == "write"


def environment_for(job: dict[str, Any], stack: str | None) -> str | None:
    """The GitHub environment the job runs in for ``stack`` (a literal or the dispatch choice)."""
    environment = job.get("environment")
    if isinstance(environment, dict):
        environment = environment.get("name")
    if environment is None:
        return None
    chosen = CHOSEN_ENVIRONMENT.fullmatch(str(environment))
    if chosen is None:
        return str(environment)
    chosen_stack, when_chosen, otherwise = chosen.groups()
    return when_chosen if stack == chosen_stack else otherwise


def pull_request_tokens(workflow: Workflow) -> Iterator[tuple[str, dict[str, str]]]:
    """Every token a pull-request-triggered job of the workflow could mint, per job."""
    for event in sorted(events(workflow) & set(PULL_REQUEST_EVENTS)):
        # pull_request runs on the merge ref; pull_request_target on the base branch.
        ref = PULL_REQUEST_REF if event == "pull_request" else MAIN
        for job_id, job in jobs(workflow).items():
            if not mints_tokens(job):
                continue
            for stack in STACKS:
                yield job_id, claims(environment=environment_for(job, stack), ref=ref, event=event)


def deploy_conditions() -> dict[str, str]:
    return {stack: stack_args(stack).deploy_condition for stack in STACKS}


# The condition the deployer had before issue #12: the repository, nothing else.
REPOSITORY_ONLY = {stack: f'assertion.repository == "{REPOSITORY}"' for stack in STACKS}


def pull_request_identity_problems(workflow: Workflow, conditions: dict[str, str]) -> list[str]:
    """A pull-request workflow names no deployer variable and mints no token a deployer (whose
    provider evaluates ``conditions``, per stack) accepts."""
    if not events(workflow) & set(PULL_REQUEST_EVENTS):
        return []
    problems = [
        f"{job_id}: {name} reads {variable}"
        for job_id, job in jobs(workflow).items()
        for step in steps_using(job, AUTH_ACTION)
        for name in AUTH_INPUTS
        for variable in DEPLOYER_VARIABLE.findall(str(step.get("with", {}).get(name, "")))
    ]
    problems += [
        f"{job_id}: a {token['event_name']} token ({token['sub']}) is accepted by the {stack} deployer"
        for job_id, token in pull_request_tokens(workflow)
        for stack, condition in conditions.items()
        if accepts(condition, token)
    ]
    return problems


def test_pull_requests_can_obtain_only_preview_identities(workflows: dict[str, Workflow]) -> None:
    assert {name for name, w in workflows.items() if events(w) & set(PULL_REQUEST_EVENTS)}
    violations = {
        name: pull_request_identity_problems(w, deploy_conditions())
        for name, w in workflows.items()
    }
    assert not any(violations.values()), violations


def test_the_preview_identity_accepts_the_pull_request_previews(
    workflows: dict[str, Workflow],
) -> None:
    preview = jobs(workflows["pr.yml"])["preview"]
    [auth] = steps_using(preview, AUTH_ACTION)
    for stack in STACKS:
        for name in AUTH_INPUTS:
            variable = identity_variable(auth["with"][name], stack)
            assert variable == f"GCP_PREVIEW_{name.upper()}_{stack.upper()}"
        token = claims(
            environment=environment_for(preview, stack), ref=PULL_REQUEST_REF, event="pull_request"
        )
        assert accepts(stack_args(stack).preview_condition, token), stack


# A pull request that edits pr.yml to reach for deploy rights: by naming the deployer, or (against a
# deployer that pins only the repository) by minting a token from the production environment.
BROKEN_PULL_REQUEST_WORKFLOWS = {
    "deployer-variables": """
on: pull_request
jobs:
  a:
    runs-on: ubuntu-24.04
    permissions:
      id-token: write
    steps:
      - uses: google-github-actions/auth@7c6bc770dae815cd3e89ee6cdf493a5fab2cc093
        with:
          workload_identity_provider: ${{ vars.GCP_WORKLOAD_IDENTITY_PROVIDER_PROD }}
          service_account: ${{ vars.GCP_SERVICE_ACCOUNT_PROD }}
""",
    "pull-request-target-in-production": """
on: pull_request_target
jobs:
  a:
    runs-on: ubuntu-24.04
    environment: production
    permissions:
      id-token: write
    steps:
      - run: echo the token is minted by any step that asks for it
""",
}


@pytest.mark.parametrize("case", sorted(BROKEN_PULL_REQUEST_WORKFLOWS))
def test_a_pull_request_reaching_for_a_deployer_is_caught(case: str) -> None:
    workflow = load_workflow(BROKEN_PULL_REQUEST_WORKFLOWS[case])
    assert pull_request_identity_problems(workflow, REPOSITORY_ONLY)


def test_the_real_pr_workflow_would_get_deploy_rights_from_a_repository_only_deployer(
    workflows: dict[str, Workflow],
) -> None:
    # The token check is what protects pr.yml: it fails against the pre-#12 condition.
    assert pull_request_identity_problems(workflows["pr.yml"], REPOSITORY_ONLY)


def test_a_pull_request_target_job_in_production_is_refused_by_the_deployer() -> None:
    workflow = load_workflow(BROKEN_PULL_REQUEST_WORKFLOWS["pull-request-target-in-production"])
    assert pull_request_identity_problems(workflow, deploy_conditions()) == []


def test_a_pull_request_job_in_the_production_environment_is_refused_by_the_deployer() -> None:
    # What GitHub would mint if pr.yml declared `environment: production` (reviewers aside).
    token = claims(environment="production", ref=PULL_REQUEST_REF, event="pull_request")
    assert not accepts(stack_args("prod").deploy_condition, token)


@pytest.mark.parametrize("stack", STACKS)
def test_the_deploy_job_of_each_stack_is_accepted_by_its_deployer_only(
    workflows: dict[str, Workflow], stack: str
) -> None:
    workflow = workflows["deploy.yml"]
    assert events(workflow) == {"push"}
    assert workflow["on"]["push"]["branches"] == ["main"]
    [job] = [
        job
        for job in jobs(workflow).values()
        if any(
            step["with"].get("stack-name") == stack for step in steps_using(job, "pulumi/actions")
        )
    ]
    token = claims(environment=environment_for(job, stack), event="push")
    assert environment_for(job, stack) == GITHUB_ENVIRONMENTS[stack]
    assert accepts(stack_args(stack).deploy_condition, token)
    [other] = [s for s in STACKS if s != stack]
    assert not accepts(stack_args(other).deploy_condition, token)


def test_export_runs_only_from_main(workflows: dict[str, Workflow]) -> None:
    job = jobs(workflows["export-backup.yml"])["export"]
    assert job["if"] == "github.ref == 'refs/heads/main'"


@pytest.mark.parametrize("stack", STACKS)
def test_export_runs_in_the_stacks_environment_and_its_deployer_accepts_it(
    workflows: dict[str, Workflow], stack: str
) -> None:
    job = jobs(workflows["export-backup.yml"])["export"]
    environment = environment_for(job, stack)
    # `production` is the environment with required reviewers (README_ci_identity.md, bootstrap).
    assert environment == GITHUB_ENVIRONMENTS[stack]
    deployer = stack_args(stack).deploy_condition
    assert accepts(deployer, claims(environment=environment, event="workflow_dispatch"))
    elsewhere = claims(environment=environment, ref="refs/heads/topic", event="workflow_dispatch")
    assert not accepts(deployer, elsewhere)
