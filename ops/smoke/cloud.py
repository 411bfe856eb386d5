"""The thin interface between the smoke test and Google Cloud: what it reads and starts, as plain
data. ``rest.py`` implements it over Google's REST APIs; ``tests/smoke/fake_google.py`` in memory.

Every method raises :class:`CloudApiError` when Google refuses the call (permission denied,
quota, ...); the ``get_*`` methods answer ``None`` for a resource that does not exist (HTTP 404).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

# Shared with the restore drill: Google's refusal (status, reason, message) and a listing entry.
from ops.restore_drill.cloudsql import CloudApiError, StoredObject

__all__ = [
    "AlertPolicy",
    "CloudApiError",
    "Execution",
    "LogMetric",
    "SmokeCloud",
    "StoredObject",
]


@dataclass(frozen=True)
class Execution:
    """A Cloud Run job execution (Cloud Run Admin API v2 ``Execution``)."""

    name: str
    create_time: datetime
    completion_time: datetime | None
    task_count: int
    succeeded_count: int
    failed_count: int
    cancelled_count: int
    # The "Completed" condition's message, e.g. why the execution failed; "" if none.
    message: str
    log_uri: str

    @property
    def finished(self) -> bool:
        return self.completion_time is not None

    @property
    def succeeded(self) -> bool:
        return self.finished and self.succeeded_count >= self.task_count > 0

    @property
    def short_name(self) -> str:
        """The execution ID alone, as Cloud Run's log label ``run.googleapis.com/execution_name``."""
        return self.name.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class AlertPolicy:
    name: str
    display_name: str
    # None: Monitoring did not report it ("clients should not make any assumption" when unset).
    enabled: bool | None


@dataclass(frozen=True)
class LogMetric:
    name: str
    filter: str
    # LogMetric.disabled: a disabled log-based metric counts nothing.
    disabled: bool


class SmokeCloud(Protocol):
    def run_job(self, project: str, region: str, job: str) -> str:
        """Start one execution of a Cloud Run job; return the execution's resource name."""
        ...

    def get_execution(self, name: str) -> Execution: ...

    def list_objects(self, bucket: str, prefix: str) -> list[StoredObject]: ...

    def export_log_records(self, project: str, job: str, execution: str) -> list[dict[str, Any]]:
        """The ``jsonPayload`` of every export-script log line of one execution (short name)."""
        ...

    def get_alert_policy(self, name: str) -> AlertPolicy | None: ...

    def get_log_metric(self, project: str, name: str) -> LogMetric | None: ...
