"""The GitHub workflows are valid, pass zizmor offline, and keep what a reviewer relies on:
pinned actions, minimal permissions, no script injection, policy-gated Pulumi runs, an approval
before prod, and exports through the scheduled Cloud Run job.

Each rule is a function returning the violations it finds; every rule is run against the real
workflows (expecting none) and against a small broken workflow (expecting one), so no check can pass
vacuously.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import WORKFLOWS_DIR, Workflow, load_workflow

PINNED_USES = re.compile(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}")
PINNED_USES_LINE = re.compile(r"uses:\s*[\w.-]+/[\w./-]+@[0-9a-f]{40}\s+#\s*v\d+\.\d+\.\d+\s*$")
# Any `${{ ... }}` expression that reads attacker-controllable context.
UNTRUSTED_EXPRESSION = re.compile(
    r"\$\{\{(?:(?!\}\}).)*?\b(?:github\.event\b|inputs\.|github\.head_ref\b)", re.DOTALL
)
IDENTITY_EXPRESSION = re.compile(
    r"\$\{\{\s*(?:(?:matrix|inputs)\.stack == '(\w+)' && vars\.(\w+) \|\| )?vars\.(\w+)\s*\}\}"
)
AUTH_INPUTS = ("workload_identity_provider", "service_account")
MINIMAL_TOP_LEVEL_PERMISSIONS: tuple[dict[str, str], ...] = ({}, {"contents": "read"})
AUTH_ACTION = "google-github-actions/auth"
PULUMI_ACTION = "pulumi/actions"
CHECKOUT_ACTION = "actions/checkout"
UV_ACTION = "astral-sh/setup-uv"
POLICY_PACK_DIR = "policies"
STACKS = {"staging", "prod"}
# An expression naming the repository secret, not a credential.
PULUMI_TOKEN_FROM_SECRETS = "${{ secrets.PULUMI_ACCESS_TOKEN }}"  # noqa: S105


# --- helpers -------------------------------------------------------------------------------------


def jobs(workflow: Workflow) -> dict[str, dict[str, Any]]:
    return dict(workflow.get("jobs") or {})


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps") or [])


def action_name(step: dict[str, Any]) -> str:
    """`owner/repo` of a step's action ('' for a run step)."""
    return str(step.get("uses", "")).split("@", 1)[0]


def steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [step for step in steps(job) if action_name(step) == action]


def all_steps(workflow: Workflow) -> Iterator[tuple[str, dict[str, Any]]]:
    for job_id, job in jobs(workflow).items():
        for step in steps(job):
            yield job_id, step


def pulumi_runs(workflow: Workflow) -> Iterator[tuple[str, dict[str, Any]]]:
    """The pulumi/actions steps that preview or update a stack."""
    for job_id, step in all_steps(workflow):
        if action_name(step) == PULUMI_ACTION and step.get("with", {}).get("command"):
            yield job_id, step


def comments_on_pr(job: dict[str, Any]) -> bool:
    return any(
        str(step.get("with", {}).get("comment-on-pr", "")).lower() == "true"
        for step in steps_using(job, PULUMI_ACTION)
    )


# --- rules ---------------------------------------------------------------------------------------


def unpinned_actions(workflow: Workflow) -> list[str]:
    """Every remote action (step or reusable workflow) is pinned to a full commit SHA."""
    references = [(job_id, job.get("uses")) for job_id, job in jobs(workflow).items()]
    references += [(job_id, step.get("uses")) for job_id, step in all_steps(workflow)]
    return [
        f"{job_id}: {uses}"
        for job_id, uses in references
        if uses and not str(uses).startswith("./") and not PINNED_USES.fullmatch(str(uses))
    ]


def pins_without_version_comment(text: str) -> list[str]:
    """Each pin says which release it is (`# vX.Y.Z`), so reviewers and Dependabot can follow it."""
    return [
        line.strip()
        for line in text.splitlines()
        if re.match(r"\s*(?:-\s*)?uses:", line)
        and "uses: ./" not in line
        and not PINNED_USES_LINE.search(line)
    ]


def top_level_permission_problems(workflow: Workflow) -> list[str]:
    permissions = workflow.get("permissions", "<missing>")
    if permissions in MINIMAL_TOP_LEVEL_PERMISSIONS:
        return []
    return [f"top-level permissions must be {{}} or contents: read, got {permissions!r}"]


def job_permission_problems(workflow: Workflow) -> list[str]:
    """Write scopes only where used: id-token for Google auth, pull-requests for the PR comment."""
    problems = []
    for job_id, job in jobs(workflow).items():
        permissions = job.get("permissions", {})
        if not isinstance(permissions, dict):
            problems.append(f"{job_id}: permissions must be a mapping, got {permissions!r}")
            continue
        allowed_writes = set()
        if steps_using(job, AUTH_ACTION):
            allowed_writes.add("id-token")
            if permissions.get("id-token") != "write":
                problems.append(f"{job_id}: Google auth needs id-token: write")
        if comments_on_pr(job):
            allowed_writes.add("pull-requests")
        problems += [
            f"{job_id}: {scope}: write is not needed"
            for scope, level in permissions.items()
            if level == "write" and scope not in allowed_writes
        ]
    return problems


def untrusted_interpolations(workflow: Workflow) -> list[str]:
    """Untrusted context reaches scripts through env, never interpolated into the script text."""
    return [
        f"{job_id}: {step.get('name', step['run'][:40])}"
        for job_id, step in all_steps(workflow)
        if "run" in step and UNTRUSTED_EXPRESSION.search(str(step["run"]))
    ]


def persisted_checkout_credentials(workflow: Workflow) -> list[str]:
    return [
        f"{job_id}: {CHECKOUT_ACTION} without persist-credentials: false"
        for job_id, step in all_steps(workflow)
        if action_name(step) == CHECKOUT_ACTION
        and step.get("with", {}).get("persist-credentials") is not False
    ]


def identity_variable(expression: str, stack: str) -> str | None:
    """The repository variable an auth input reads for ``stack``, or None if it is no such
    expression: `${{ vars.X }}`, or `${{ <matrix|inputs>.stack == 'S' && vars.A || vars.B }}`."""
    match = IDENTITY_EXPRESSION.fullmatch(expression)
    if match is None:
        return None
    chosen_stack, chosen_variable, other_variable = match.groups()
    return chosen_variable if chosen_stack == stack else other_variable


def key_based_google_auth(workflow: Workflow) -> list[str]:
    """Workload Identity Federation from repository variables; never a JSON key."""
    problems = []
    for job_id, step in all_steps(workflow):
        if action_name(step) != AUTH_ACTION:
            continue
        inputs = step.get("with", {})
        if "credentials_json" in inputs:
            problems.append(f"{job_id}: credentials_json (a service-account key)")
        for name in AUTH_INPUTS:
            if identity_variable(str(inputs.get(name, "")), "staging") is None:
                problems.append(f"{job_id}: {name} must come from a repository variable")
    return problems


def missing_policy_pack(workflow: Workflow) -> list[str]:
    """Each preview/up runs the policy pack with the config file of the stack it operates on."""
    problems = []
    for job_id, step in pulumi_runs(workflow):
        inputs = step.get("with", {})
        stack = inputs.get("stack-name")
        if inputs.get("policyPacks") != POLICY_PACK_DIR:
            problems.append(f"{job_id}: policyPacks must be {POLICY_PACK_DIR!r}")
        if inputs.get("policyPackConfigs") != f"{POLICY_PACK_DIR}/config/{stack}.json":
            problems.append(f"{job_id}: policyPackConfigs must be the config of stack {stack}")
    return problems


def pulumi_token_problems(workflow: Workflow) -> list[str]:
    """Pulumi Cloud is reached with the PULUMI_ACCESS_TOKEN secret, only in steps that need it."""
    problems = []
    for job_id, step in all_steps(workflow):
        provided = step.get("env", {}).get("PULUMI_ACCESS_TOKEN")
        runs_a_command = action_name(step) == PULUMI_ACTION and "command" in step.get("with", {})
        needs_token = runs_a_command or "pulumi stack" in str(step.get("run"))
        if needs_token and provided != PULUMI_TOKEN_FROM_SECRETS:
            problems.append(f"{job_id}: PULUMI_ACCESS_TOKEN must be the secret, got {provided!r}")
    for job_id, job in jobs(workflow).items():
        if "PULUMI_ACCESS_TOKEN" in job.get("env", {}) or "PULUMI_ACCESS_TOKEN" in workflow.get(
            "env", {}
        ):
            problems.append(f"{job_id}: the Pulumi token is exposed to every step")
    return problems


RULES: dict[str, Callable[[Workflow], list[str]]] = {
    "unpinned_actions": unpinned_actions,
    "top_level_permission_problems": top_level_permission_problems,
    "job_permission_problems": job_permission_problems,
    "untrusted_interpolations": untrusted_interpolations,
    "persisted_checkout_credentials": persisted_checkout_credentials,
    "key_based_google_auth": key_based_google_auth,
    "missing_policy_pack": missing_policy_pack,
    "pulumi_token_problems": pulumi_token_problems,
}


# --- the real workflows --------------------------------------------------------------------------


def test_the_three_workflows_exist(workflows: dict[str, Workflow]) -> None:
    assert {"pr.yml", "deploy.yml", "export-backup.yml"} <= set(workflows)


def test_workflows_match_githubs_schema_offline(venv_tool: Callable[[str], Path]) -> None:
    # The schema is vendored in check-jsonschema: this runs without network access.
    result = run_tool(
        venv_tool("check-jsonschema"),
        "--builtin-schema",
        "vendor.github-workflows",
        *sorted(str(path) for path in WORKFLOWS_DIR.glob("*.yml")),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing_offline(venv_tool: Callable[[str], Path]) -> None:
    result = run_tool(venv_tool("zizmor"), "--offline", "--no-progress", str(WORKFLOWS_DIR))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("rule", sorted(RULES))
def test_workflows_keep_each_rule(rule: str, workflows: dict[str, Workflow]) -> None:
    violations = {name: RULES[rule](workflow) for name, workflow in workflows.items()}
    assert not any(violations.values()), violations


def test_every_pin_names_its_release(workflow_texts: dict[str, str]) -> None:
    violations = {name: pins_without_version_comment(text) for name, text in workflow_texts.items()}
    assert not any(violations.values()), violations


def test_an_action_is_pinned_to_one_commit_everywhere(workflows: dict[str, Workflow]) -> None:
    # Two SHAs for one action means one upgrade was half done.
    pins: dict[str, set[str]] = {}
    for workflow in workflows.values():
        for _, step in all_steps(workflow):
            if "uses" in step:
                action, _, sha = str(step["uses"]).partition("@")
                pins.setdefault(action, set()).add(sha)
    assert {action: shas for action, shas in pins.items() if len(shas) > 1} == {}


def test_pull_requests_preview_both_stacks_and_comment(workflows: dict[str, Workflow]) -> None:
    workflow = workflows["pr.yml"]
    assert set(workflow["on"]) == {"pull_request"}
    preview = jobs(workflow)["preview"]
    assert set(preview["strategy"]["matrix"]["stack"]) == STACKS
    assert "test" in as_list(preview.get("needs")), "the preview runs after make test"
    [pulumi] = steps_using(preview, PULUMI_ACTION)
    assert pulumi["with"]["command"] == "preview"
    assert pulumi["with"]["stack-name"] == "${{ matrix.stack }}"
    assert comments_on_pr(preview)
    assert any(step.get("run") == "make test" for step in steps(jobs(workflow)["test"]))


def test_a_newer_push_cancels_a_stale_pull_request_run(workflows: dict[str, Workflow]) -> None:
    concurrency = workflows["pr.yml"]["concurrency"]
    assert "github.ref" in concurrency["group"]
    assert concurrency["cancel-in-progress"] is True


def test_deploys_run_on_main_and_are_never_cancelled(workflows: dict[str, Workflow]) -> None:
    workflow = workflows["deploy.yml"]
    assert workflow["on"] == {"push": {"branches": ["main"]}}
    assert workflow["concurrency"]["cancel-in-progress"] is False


def test_prod_is_deployed_after_staging_and_behind_the_production_environment(
    workflows: dict[str, Workflow],
) -> None:
    deploy_jobs = jobs(workflows["deploy.yml"])
    staging_job = job_running_stack(deploy_jobs, "staging")
    prod_job_id = job_running_stack(deploy_jobs, "prod")
    prod = deploy_jobs[prod_job_id]
    assert environment_name(prod) == "production"
    assert staging_job in as_list(prod.get("needs"))
    [pulumi] = steps_using(prod, PULUMI_ACTION)
    assert pulumi["with"]["command"] == "up"


def stacks_served(workflow: Workflow, job: dict[str, Any]) -> set[str]:
    """The stacks a job operates on: its pulumi step's stack, its matrix, or the dispatch choice."""
    named = {
        str(step["with"]["stack-name"])
        for step in steps_using(job, PULUMI_ACTION)
        if "stack-name" in step["with"]
    }
    if named and "${{ matrix.stack }}" not in named:
        return named
    matrix = job.get("strategy", {}).get("matrix", {}).get("stack")
    dispatch = workflow["on"].get("workflow_dispatch") or {}
    choices = dispatch.get("inputs", {}).get("stack", {}).get("options")
    return set(matrix or choices or [])


def test_each_stack_authenticates_as_its_own_projects_deployer(
    workflows: dict[str, Workflow],
) -> None:
    # Each stack's project has its own pool and identities: a prod run must never get staging's
    # identity names, and the reverse. Pull requests get the read-only preview identity.
    checked = 0
    for workflow in workflows.values():
        identity = "PREVIEW_" if "pull_request" in workflow["on"] else ""
        for job in jobs(workflow).values():
            for step in steps_using(job, AUTH_ACTION):
                for stack in stacks_served(workflow, job):
                    for name in AUTH_INPUTS:
                        variable = identity_variable(step["with"][name], stack)
                        expected = f"GCP_{identity}{name.upper()}_{stack.upper()}"
                        assert variable == expected, (stack, name)
                        checked += 1
    # preview x2 stacks, deploy staging and prod, export x2 stacks; two inputs each.
    assert checked == 12


def test_the_policy_pack_and_its_stack_configs_exist(repo_root: Path) -> None:
    # A missing pack or config file makes every preview and deploy fail in CI, not here.
    assert (repo_root / POLICY_PACK_DIR / "PulumiPolicy.yaml").is_file()
    for stack in sorted(STACKS):
        assert (repo_root / POLICY_PACK_DIR / "config" / f"{stack}.json").is_file(), stack


def test_cli_version_matches_the_pinned_pulumi_sdk(
    workflows: dict[str, Workflow], repo_root: Path
) -> None:
    pyproject = tomllib.loads((repo_root / "pyproject.toml").read_text())
    [sdk_pin] = [dep for dep in pyproject["project"]["dependencies"] if dep.startswith("pulumi==")]
    sdk_version = sdk_pin.removeprefix("pulumi==")
    versions = {
        str(step["with"].get("pulumi-version"))
        for workflow in workflows.values()
        for _, step in all_steps(workflow)
        if action_name(step) == PULUMI_ACTION
    }
    assert versions == {sdk_version}


def test_uv_is_on_path_wherever_the_program_runs(
    workflows: dict[str, Workflow], repo_root: Path
) -> None:
    # Pulumi.yaml's `toolchain: uv` makes Pulumi look uv up on PATH before running the program.
    [make_uv] = re.findall(r"^UV_VERSION := (\S+)$", (repo_root / "Makefile").read_text(), re.M)
    checked = 0
    for workflow in workflows.values():
        for job_id, job in jobs(workflow).items():
            names = [action_name(step) for step in steps(job)]
            if not any(
                step.get("with", {}).get("command") for step in steps_using(job, PULUMI_ACTION)
            ):
                continue
            assert UV_ACTION in names, f"{job_id} runs the program without uv"
            assert names.index(UV_ACTION) < names.index(PULUMI_ACTION), job_id
            [setup_uv] = steps_using(job, UV_ACTION)
            assert str(setup_uv["with"]["version"]) == make_uv, job_id
            checked += 1
    assert checked == 3  # preview, deploy staging, deploy prod


def test_export_is_dispatched_for_a_chosen_stack(workflows: dict[str, Workflow]) -> None:
    workflow = workflows["export-backup.yml"]
    stack_input = workflow["on"]["workflow_dispatch"]["inputs"]["stack"]
    assert stack_input["type"] == "choice"
    assert set(stack_input["options"]) == STACKS
    assert workflow["concurrency"]["cancel-in-progress"] is False


def test_export_runs_the_stacks_cloud_run_job_and_waits(workflows: dict[str, Workflow]) -> None:
    [(_, step)] = [
        (job_id, step)
        for job_id, step in all_steps(workflows["export-backup.yml"])
        if "gcloud run jobs execute" in str(step.get("run"))
    ]
    script = step["run"]
    assert step["env"]["STACK"] == "${{ inputs.stack }}"
    for output in ("export_job_name", "region", "project"):
        assert f'pulumi stack output {output} --stack "$STACK"' in script
    assert 'gcloud run jobs execute "$job" --region "$region" --project "$project" --wait' in script
    assert "set -euo pipefail" in script


def test_the_outputs_the_export_reads_are_exported_by_the_program(repo_root: Path) -> None:
    program = (repo_root / "infra" / "__main__.py").read_text()
    missing = [
        name for name in ("export_job_name", "region", "project") if f'"{name}"' not in program
    ]
    assert missing == [], f"infra/__main__.py does not export {missing}"


# --- each rule detects what it guards against ----------------------------------------------------

BROKEN_WORKFLOWS: dict[str, str] = {
    "unpinned_actions": """
on: push
jobs:
  a:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v4
""",
    "top_level_permission_problems": """
on: push
permissions: write-all
jobs: {}
""",
    "job_permission_problems": """
on: push
jobs:
  a:
    runs-on: ubuntu-24.04
    permissions:
      contents: write
    steps:
      - run: make test
""",
    "untrusted_interpolations": """
on: pull_request
jobs:
  a:
    runs-on: ubuntu-24.04
    steps:
      - run: echo "${{ github.event.pull_request.title }}"
""",
    "persisted_checkout_credentials": """
on: push
jobs:
  a:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@9c091bb21b7c1c1d1991bb908d89e4e9dddfe3e0
""",
    "key_based_google_auth": """
on: push
jobs:
  a:
    runs-on: ubuntu-24.04
    steps:
      - uses: google-github-actions/auth@7c6bc770dae815cd3e89ee6cdf493a5fab2cc093
        with:
          credentials_json: ${{ secrets.GCP_KEY }}
""",
    "missing_policy_pack": """
on: push
jobs:
  a:
    runs-on: ubuntu-24.04
    steps:
      - uses: pulumi/actions@8e5e406f4007fca908480587cb9893c07090f58d
        with:
          command: up
          stack-name: prod
          policyPacks: policies
          policyPackConfigs: policies/config/staging.json
""",
    "pulumi_token_problems": """
on: push
env:
  PULUMI_ACCESS_TOKEN: ${{ secrets.PULUMI_ACCESS_TOKEN }}
jobs:
  a:
    runs-on: ubuntu-24.04
    steps:
      - uses: pulumi/actions@8e5e406f4007fca908480587cb9893c07090f58d
        with:
          command: up
          stack-name: prod
""",
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_each_rule_catches_its_violation(rule: str) -> None:
    assert RULES[rule](load_workflow(BROKEN_WORKFLOWS[rule]))


@pytest.mark.parametrize(
    "run",
    [
        'echo "${{ inputs.stack }}"',
        "git switch ${{ github.head_ref }}",
        "echo ${{ toJSON(github.event.inputs) }}",
        "echo ${{\n  github.event.comment.body }}",
    ],
)
def test_any_untrusted_expression_in_a_script_is_caught(run: str) -> None:
    workflow = {"jobs": {"a": {"steps": [{"run": run}]}}}
    assert untrusted_interpolations(workflow)


def test_a_pin_without_its_release_is_caught() -> None:
    text = "      - uses: actions/checkout@9c091bb21b7c1c1d1991bb908d89e4e9dddfe3e0\n"
    assert pins_without_version_comment(text)


def test_google_auth_without_an_oidc_token_is_caught() -> None:
    workflow = load_workflow(
        """
on: push
jobs:
  a:
    runs-on: ubuntu-24.04
    permissions:
      contents: read
    steps:
      - uses: google-github-actions/auth@7c6bc770dae815cd3e89ee6cdf493a5fab2cc093
"""
    )
    assert job_permission_problems(workflow) == ["a: Google auth needs id-token: write"]


def test_the_schema_check_rejects_an_invalid_workflow(
    venv_tool: Callable[[str], Path], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  a:\n    steps:\n      - run: true\n")  # no runs-on
    result = run_tool(
        venv_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(broken)
    )
    assert result.returncode != 0


def test_zizmor_offline_flags_script_injection(
    venv_tool: Callable[[str], Path], tmp_path: Path
) -> None:
    workflows_dir = tmp_path / ".github" / "workflows"
    workflows_dir.mkdir(parents=True)
    (workflows_dir / "inject.yml").write_text(BROKEN_WORKFLOWS["untrusted_interpolations"])
    result = run_tool(venv_tool("zizmor"), "--offline", "--no-progress", str(workflows_dir))
    assert result.returncode != 0
    assert "template-injection" in result.stdout + result.stderr


# --- small utilities -----------------------------------------------------------------------------


def run_tool(tool: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tool), *args], capture_output=True, text=True, timeout=120, check=False
    )


def as_list(value: object) -> list[str]:
    if value is None:
        return []
    return [str(item) for item in value] if isinstance(value, list) else [str(value)]


def environment_name(job: dict[str, Any]) -> str | None:
    environment = job.get("environment")
    return str(environment.get("name")) if isinstance(environment, dict) else environment


def job_running_stack(workflow_jobs: dict[str, dict[str, Any]], stack: str) -> str:
    [job_id] = [
        job_id
        for job_id, job in workflow_jobs.items()
        if any(step["with"].get("stack-name") == stack for step in steps_using(job, PULUMI_ACTION))
    ]
    return job_id
