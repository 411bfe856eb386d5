"""Fixtures for the GitHub workflow checks and the CiIdentity component tests (all offline)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import pulumi
import pytest
import yaml
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS_DIR = REPO_ROOT / ".github" / "workflows"

# A project *number*: Workload Identity resource names carry the number, never the project ID.
MOCK_PROJECT_NUMBER = "123456789012"

Workflow = dict[str, Any]
T = TypeVar("T")


def load_workflow(text: str) -> Workflow:
    """Parse a workflow; YAML 1.1 reads the bare key `on` as True, so put it back under "on"."""
    document = yaml.safe_load(text)
    assert isinstance(document, dict), "a workflow is a mapping"
    if True in document:
        document["on"] = document.pop(True)
    return cast(Workflow, document)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def workflow_texts() -> dict[str, str]:
    """Raw text of every workflow by file name: the `# vX.Y.Z` comments of pins live only here."""
    texts = {path.name: path.read_text() for path in sorted(WORKFLOWS_DIR.glob("*.yml"))}
    assert texts, f"no workflows in {WORKFLOWS_DIR}"
    return texts


@pytest.fixture(scope="session")
def workflows(workflow_texts: dict[str, str]) -> dict[str, Workflow]:
    return {name: load_workflow(text) for name, text in workflow_texts.items()}


@pytest.fixture(scope="session")
def venv_tool() -> Callable[[str], Path]:
    """Path of a console script installed in the project venv that runs these tests."""

    def find(name: str) -> Path:
        tool = Path(sys.executable).parent / name
        assert tool.exists(), f"{name} is not installed next to {sys.executable}: run `make setup`"
        return tool

    return find


def _computed_outputs(resource_type: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Outputs the real provider computes, derived the way Google derives them; nothing else."""
    if resource_type == "gcp:iam/workloadIdentityPool:WorkloadIdentityPool":
        pool = inputs["workloadIdentityPoolId"]
        return {
            "name": f"projects/{MOCK_PROJECT_NUMBER}/locations/global/workloadIdentityPools/{pool}",
            "state": "ACTIVE",
        }
    if resource_type == "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider":
        pool, provider = inputs["workloadIdentityPoolId"], inputs["workloadIdentityPoolProviderId"]
        return {
            "name": (
                f"projects/{MOCK_PROJECT_NUMBER}/locations/global/workloadIdentityPools/{pool}"
                f"/providers/{provider}"
            ),
            "state": "ACTIVE",
        }
    if resource_type == "gcp:serviceaccount/account:Account":
        email = f"{inputs['accountId']}@{inputs['project']}.iam.gserviceaccount.com"
        return {
            "email": email,
            "member": f"serviceAccount:{email}",
            "name": f"projects/{inputs['project']}/serviceAccounts/{email}",
            "uniqueId": "109876543210987654321",
        }
    if resource_type == "gcp:projects/iAMCustomRole:IAMCustomRole":
        return {"name": f"projects/{inputs['project']}/roles/{inputs['roleId']}", "deleted": False}
    if resource_type.endswith(":IAMMember"):
        return {"etag": "BwYmockEtag="}
    return {}


class RecordingMocks(pulumi.runtime.Mocks):
    """Honest mocks: echo the inputs, add only what the provider would compute, record each call."""

    def __init__(self) -> None:
        self.registered: list[MockResourceArgs] = []

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        self.registered.append(args)
        outputs = {**args.inputs, **_computed_outputs(args.typ, args.inputs)}
        physical_id = outputs.get("name") if args.custom else None
        return (str(physical_id) if physical_id else f"{args.name}-id"), outputs

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        raise AssertionError(f"unexpected provider function call {args.token}")

    def of_type(self, resource_type: str) -> list[MockResourceArgs]:
        return [args for args in self.registered if args.typ == resource_type]


@dataclass(frozen=True)
class PulumiHarness:
    """Runs a program under the mocks and exposes what was registered."""

    mocks: RecordingMocks
    monitor: MockMonitor

    def run(self, program: Callable[[], pulumi.Output[T]]) -> T:
        """Run ``program`` to completion (every registration done) and return its resolved value."""
        resolved: list[T] = []

        def remember(value: T) -> T:
            resolved.append(value)
            return value

        # pulumi.runtime.test is untyped: it runs a callable returning an Output and awaits it.
        run_to_completion = cast(
            Callable[[Callable[[], pulumi.Output[T]]], Callable[[], None]], pulumi.runtime.test
        )
        run_to_completion(lambda: program().apply(remember))()
        assert resolved, "the program's output never resolved"
        return resolved[0]

    def urns(self) -> list[str]:
        return list(self.monitor.get_registered_resources())


@pytest.fixture
def pulumi_harness() -> Iterator[PulumiHarness]:
    """Fresh mocks per test, as an update (preview=False) so computed outputs resolve."""
    mocks = RecordingMocks()
    monitor = MockMonitor(mocks)
    pulumi.runtime.set_mocks(
        mocks, project="cloudsql-backups", stack="staging", preview=False, monitor=monitor
    )
    yield PulumiHarness(mocks=mocks, monitor=monitor)
