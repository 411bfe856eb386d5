"""The post-deploy smoke test: what a fresh `pulumi up` cannot prove offline, checked on the real stack.

1. Every alert policy the stack declares exists and is enabled; every log-based metric exists.
2. The export job runs to success, and for each database there is one new, non-empty gzip object under
   ``cloudsql/<instance>/<database>/`` that the script's own success line names, with the same size (a
   parallel export: the folder it names, whose new files add up to that size).

Each problem becomes one plain sentence in :class:`SmokeReport`; nothing stops at the first one, so one
run tells an operator everything that is wrong.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ops.smoke.cloud import CloudApiError, Execution, SmokeCloud, StoredObject


class SmokeSettingsError(ValueError):
    """The stack outputs do not describe a deployed stack the smoke test can check."""


@dataclass(frozen=True)
class StackUnderTest:
    """The stack outputs the smoke test reads (``pulumi stack output --json``)."""

    project: str
    region: str
    instance: str
    bucket: str
    job: str
    databases: tuple[str, ...]
    alert_policies: tuple[str, ...]
    log_metrics: tuple[str, ...]

    @staticmethod
    def from_outputs(outputs: Mapping[str, Any]) -> StackUnderTest:
        return StackUnderTest(
            project=_text(outputs, "project"),
            region=_text(outputs, "region"),
            instance=_text(outputs, "instance_name"),
            bucket=_text(outputs, "backup_bucket_name"),
            job=_text(outputs, "export_job_name"),
            databases=_names(outputs, "export_databases"),
            alert_policies=_names(outputs, "alert_policy_names"),
            log_metrics=_names(outputs, "log_metric_names"),
        )


def _text(outputs: Mapping[str, Any], key: str) -> str:
    value = outputs.get(key)
    if not isinstance(value, str) or not value:
        raise SmokeSettingsError(
            f"stack output {key!r} should be a non-empty string, got {value!r} "
            "(deploy the stack with this version of infra/ first)"
        )
    return value


def _names(outputs: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = outputs.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise SmokeSettingsError(
            f"stack output {key!r} should be a non-empty list of names, got {value!r} "
            "(deploy the stack with this version of infra/ first)"
        )
    return tuple(value)


@dataclass(frozen=True)
class Waiting:
    """How long to wait for the export and for its log lines, and how (injectable for tests)."""

    execution_timeout_seconds: float = 6 * 3600
    logs_timeout_seconds: float = 300
    interval_seconds: float = 15
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic


@dataclass
class SmokeReport:
    passed: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def markdown(self, stack: str) -> str:
        verdict = "passed" if self.ok else f"FAILED ({len(self.failures)} problem(s))"
        lines = [f"## Smoke test of stack `{stack}`: {verdict}", ""]
        lines += [f"- :x: {failure}" for failure in self.failures]
        lines += [f"- :white_check_mark: {check}" for check in self.passed]
        return "\n".join(lines) + "\n"


def run_smoke(cloud: SmokeCloud, stack: StackUnderTest, waiting: Waiting) -> SmokeReport:
    report = SmokeReport()
    check_alert_policies(cloud, stack, report)
    check_log_metrics(cloud, stack, report)
    execution = run_export(cloud, stack, waiting, report)
    if execution is not None and execution.succeeded:
        check_exports(cloud, stack, execution, waiting, report)
    return report


def check_alert_policies(cloud: SmokeCloud, stack: StackUnderTest, report: SmokeReport) -> None:
    for name in stack.alert_policies:
        try:
            policy = cloud.get_alert_policy(name)
        except CloudApiError as error:
            report.failures.append(f"alert policy {name} could not be read: {error}")
            continue
        if policy is None:
            report.failures.append(f"alert policy {name} does not exist")
        elif policy.enabled is not True:
            state = "disabled" if policy.enabled is False else "not reported as enabled"
            report.failures.append(f"alert policy {name} ({policy.display_name}) is {state}")
        else:
            report.passed.append(f"alert policy {policy.display_name} exists and is enabled")


def check_log_metrics(cloud: SmokeCloud, stack: StackUnderTest, report: SmokeReport) -> None:
    for name in stack.log_metrics:
        try:
            found = cloud.get_log_metric(stack.project, name)
        except CloudApiError as error:
            report.failures.append(f"log-based metric {name} could not be read: {error}")
            continue
        if found is None:
            report.failures.append(f"log-based metric {name} does not exist in {stack.project}")
        elif found.disabled:
            report.failures.append(f"log-based metric {name} is disabled: it counts nothing")
        else:
            report.passed.append(f"log-based metric {name} exists")


def run_export(
    cloud: SmokeCloud, stack: StackUnderTest, waiting: Waiting, report: SmokeReport
) -> Execution | None:
    """Execute the export job and wait for it (what `gcloud run jobs execute --wait` does)."""
    try:
        name = cloud.run_job(stack.project, stack.region, stack.job)
    except CloudApiError as error:
        report.failures.append(f"export job {stack.job} could not be started: {error}")
        return None
    deadline = waiting.monotonic() + waiting.execution_timeout_seconds
    while True:
        try:
            execution = cloud.get_execution(name)
        except CloudApiError as error:
            report.failures.append(f"export execution {name} could not be read: {error}")
            return None
        if execution.finished or waiting.monotonic() >= deadline:
            break
        waiting.sleep(waiting.interval_seconds)
    if not execution.finished:
        report.failures.append(
            f"export execution {name} did not finish within "
            f"{waiting.execution_timeout_seconds:.0f} s (it keeps running; see {execution.log_uri})"
        )
    elif not execution.succeeded:
        report.failures.append(
            f"export execution {name} failed ({execution.succeeded_count} of {execution.task_count} "
            f"task(s) succeeded, {execution.failed_count} failed, {execution.cancelled_count} "
            f"cancelled): {execution.message or 'no message'}; logs: {execution.log_uri}"
        )
    else:
        report.passed.append(f"export execution {execution.short_name} succeeded")
    return execution


def check_exports(
    cloud: SmokeCloud,
    stack: StackUnderTest,
    execution: Execution,
    waiting: Waiting,
    report: SmokeReport,
) -> None:
    """One new, non-empty gzip object per database, named by the script's success line."""
    records = _success_records(cloud, stack, execution, waiting, report)
    for database in stack.databases:
        prefix = f"cloudsql/{stack.instance}/{database}/"
        try:
            new = [
                stored
                for stored in cloud.list_objects(stack.bucket, prefix)
                if stored.time_created >= execution.create_time
            ]
        except CloudApiError as error:
            report.failures.append(f"gs://{stack.bucket}/{prefix} could not be listed: {error}")
            continue
        verified, problem = _verified_export(
            cloud, new, records.get(database), prefix, stack.bucket
        )
        if verified is None:
            report.failures.append(f"database {database}: {problem}")
        else:
            report.passed.append(
                f"database {database}: verified export {verified.uri} ({verified.size} bytes)"
            )


def _success_records(
    cloud: SmokeCloud,
    stack: StackUnderTest,
    execution: Execution,
    waiting: Waiting,
    report: SmokeReport,
) -> dict[str, dict[str, Any]]:
    """The script's succeeded line per database; Cloud Logging ingests with a delay, so poll."""
    deadline = waiting.monotonic() + waiting.logs_timeout_seconds
    while True:
        try:
            records = cloud.export_log_records(stack.project, stack.job, execution.short_name)
        except CloudApiError as error:
            report.failures.append(
                f"the export's log lines could not be read ({error}); the deployer needs "
                "logging.logEntries.list (roles/logging.viewer)"
            )
            return {}
        succeeded = {str(r.get("database")): r for r in records if r.get("status") == "succeeded"}
        if set(stack.databases) <= set(succeeded) or waiting.monotonic() >= deadline:
            return succeeded
        waiting.sleep(waiting.interval_seconds)


def _verified_export(
    cloud: SmokeCloud,
    new: Sequence[StoredObject],
    record: dict[str, Any] | None,
    prefix: str,
    bucket: str,
) -> tuple[StoredObject | None, str]:
    """The new object this execution's success line names, if it is non-empty gzip of that size."""
    stored, problem = _named_object(new, record, prefix, bucket)
    if stored is None or record is None:
        return None, problem
    problem = _content_problem(stored, record)
    return (None, problem) if problem else (stored, "")


def _named_object(
    new: Sequence[StoredObject], record: dict[str, Any] | None, prefix: str, bucket: str
) -> tuple[StoredObject | None, str]:
    if not new:
        return None, f"no new object under gs://{bucket}/{prefix} since the execution started"
    uris = [stored.uri for stored in new]
    if record is None:
        return None, f"no succeeded log line from the export script for it (new: {uris})"
    named = [stored for stored in new if stored.uri == record.get("object")]
    if not named and record.get("format") == "parallel":
        named = _folder(new, str(record.get("object")), bucket)
    if not named:
        return None, (
            f"the success line names {record.get('object')}, which is not among the new objects {uris}"
        )
    return named[0], ""


def _folder(new: Sequence[StoredObject], folder_uri: str, bucket: str) -> list[StoredObject]:
    """A parallel export's folder (its success line names the folder, ops/export/README.md) as
    one entry: the new files under it, their sizes added up."""
    files = [stored for stored in new if stored.uri.startswith(f"{folder_uri}/")]
    if not files:
        return []
    name = folder_uri.removeprefix(f"gs://{bucket}/")
    created = min(stored.time_created for stored in files)
    return [StoredObject(bucket, name, sum(stored.size for stored in files), created)]


def _content_problem(stored: StoredObject, record: dict[str, Any]) -> str:
    """What is wrong with an export the job reported. The job itself decompressed the whole dump and
    checked pg_dump's completion line before it wrote its success line with ``uncompressed_bytes``
    (ops/export/cloudsql_export.py); the smoke test never reads a dump, which the deployer it runs
    as is not allowed to (README_ci_identity.md)."""
    if stored.size <= 0:
        return f"{stored.uri} is empty"
    if record.get("bytes") != stored.size:
        return f"the success line says {record.get('bytes')} bytes but {stored.uri} holds {stored.size}"
    uncompressed = record.get("uncompressed_bytes")
    if not isinstance(uncompressed, int) or uncompressed <= 0:
        return (
            f"the success line for {stored.uri} does not say the job verified the dump "
            f"(uncompressed_bytes = {uncompressed!r})"
        )
    return ""
