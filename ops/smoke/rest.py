"""`SmokeCloud` over Google's REST APIs with an authorized ``requests`` session (google-auth).

Endpoints (each checked in Google's API reference):
  POST {run}/v2/projects/P/locations/R/jobs/J:run           jobs.run -> Operation, metadata = Execution
       https://cloud.google.com/run/docs/reference/rest/v2/projects.locations.jobs/run
  GET  {run}/v2/{execution}                                 executions.get (completionTime, *Count, conditions)
       https://cloud.google.com/run/docs/reference/rest/v2/projects.locations.jobs.executions
  GET  {storage}/storage/v1/b/B/o?prefix=...                objects.list (name, size as a string, timeCreated)
       https://cloud.google.com/storage/docs/json_api/v1/objects
  POST {logging}/v2/entries:list                            entries.list (resourceNames, filter, pageToken)
       https://cloud.google.com/logging/docs/reference/v2/rest/v2/entries/list
  GET  {monitoring}/v3/projects/P/alertPolicies/ID          alertPolicies.get (enabled)
       https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.alertPolicies
  GET  {logging}/v2/projects/P/metrics/NAME                 projects.metrics.get
       https://cloud.google.com/logging/docs/reference/v2/rest/v2/projects.metrics/get
Errors arrive as {"error": {"code": 403, "message": ..., "status": "PERMISSION_DENIED"}}.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import google.auth
import requests
from google.auth.transport.requests import AuthorizedSession

from ops.smoke.cloud import AlertPolicy, CloudApiError, Execution, LogMetric, StoredObject

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
REQUEST_TIMEOUT_SECONDS = 60.0
ERROR_TEXT_LIMIT = 500
# Cloud Run labels each log entry of a job with the execution it came from
# (https://cloud.google.com/run/docs/logging#job-logs).
EXECUTION_LABEL = 'labels."run.googleapis.com/execution_name"'

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class Endpoints:
    run: str = "https://run.googleapis.com"
    storage: str = "https://storage.googleapis.com"
    logging: str = "https://logging.googleapis.com"
    monitoring: str = "https://monitoring.googleapis.com"


def authorized_session() -> requests.Session:
    """Application Default Credentials: in CI, what google-github-actions/auth set up."""
    credentials, _project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    return AuthorizedSession(credentials)  # type: ignore[no-untyped-call]


def _error(response: requests.Response) -> CloudApiError:
    try:
        error = response.json().get("error", {})
    except ValueError:
        error = {}
    if not isinstance(error, dict):
        error = {}
    message = str(error.get("message") or response.text[:ERROR_TEXT_LIMIT] or response.reason)
    return CloudApiError(response.status_code, str(error.get("status") or "UNKNOWN"), message)


def _timestamp(value: Any) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value else None


def parse_execution(document: JsonObject) -> Execution:
    completed = [c for c in document.get("conditions") or [] if c.get("type") == "Completed"]
    created = _timestamp(document.get("createTime"))
    if created is None:
        raise CloudApiError(200, "MALFORMED", f"execution without createTime: {document!r}")
    return Execution(
        name=str(document["name"]),
        create_time=created,
        completion_time=_timestamp(document.get("completionTime")),
        task_count=int(document.get("taskCount", 0)),
        succeeded_count=int(document.get("succeededCount", 0)),
        failed_count=int(document.get("failedCount", 0)),
        cancelled_count=int(document.get("cancelledCount", 0)),
        message=str(completed[0].get("message", "")) if completed else "",
        log_uri=str(document.get("logUri", "")),
    )


class RestSmokeCloud:
    def __init__(self, session: requests.Session, endpoints: Endpoints | None = None) -> None:
        self._session = session
        self._endpoints = endpoints or Endpoints()

    def _request(
        self,
        method: str,
        url: str,
        *,
        body: JsonObject | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        response = self._session.request(
            method,
            url,
            json=body,
            params=params,
            headers=headers,
            timeout=REQUEST_TIMEOUT_SECONDS,
        )
        if response.status_code >= 400:
            raise _error(response)
        return response

    def _json(self, method: str, url: str, **kwargs: Any) -> JsonObject:
        response = self._request(method, url, **kwargs)
        document: JsonObject = response.json() if response.content else {}
        return document

    def _get_or_none(self, url: str) -> JsonObject | None:
        try:
            return self._json("GET", url)
        except CloudApiError as error:
            if error.status == 404:
                return None
            raise

    def run_job(self, project: str, region: str, job: str) -> str:
        url = f"{self._endpoints.run}/v2/projects/{project}/locations/{region}/jobs/{job}:run"
        operation = self._json("POST", url, body={})
        name = (operation.get("metadata") or {}).get("name")
        if not name:
            raise CloudApiError(
                200, "MALFORMED", f"jobs.run answered without an execution: {operation!r}"
            )
        return str(name)

    def get_execution(self, name: str) -> Execution:
        return parse_execution(self._json("GET", f"{self._endpoints.run}/v2/{name}"))

    def list_objects(self, bucket: str, prefix: str) -> list[StoredObject]:
        url = f"{self._endpoints.storage}/storage/v1/b/{quote(bucket, safe='')}/o"
        found: list[StoredObject] = []
        params = {"prefix": prefix}
        while True:
            page = self._json("GET", url, params=params)
            for item in page.get("items") or []:
                created = _timestamp(item.get("timeCreated"))
                if created is None:
                    raise CloudApiError(200, "MALFORMED", f"object without timeCreated: {item!r}")
                found.append(
                    StoredObject(bucket, str(item["name"]), int(item.get("size", 0)), created)
                )
            token = page.get("nextPageToken")
            if not token:
                return found
            params = {"prefix": prefix, "pageToken": str(token)}

    def export_log_records(self, project: str, job: str, execution: str) -> list[dict[str, Any]]:
        log_filter = (
            f'resource.type="cloud_run_job" AND resource.labels.job_name="{job}" '
            f'AND {EXECUTION_LABEL}="{execution}" AND jsonPayload.event="cloudsql_export"'
        )
        body: JsonObject = {
            "resourceNames": [f"projects/{project}"],
            "filter": log_filter,
            "orderBy": "timestamp asc",
            "pageSize": 1000,
        }
        records: list[dict[str, Any]] = []
        while True:
            page = self._json("POST", f"{self._endpoints.logging}/v2/entries:list", body=body)
            records.extend(
                entry["jsonPayload"]
                for entry in page.get("entries") or []
                if "jsonPayload" in entry
            )
            token = page.get("nextPageToken")
            if not token:
                return records
            body = {**body, "pageToken": token}

    def get_alert_policy(self, name: str) -> AlertPolicy | None:
        document = self._get_or_none(f"{self._endpoints.monitoring}/v3/{name}")
        if document is None:
            return None
        enabled = document.get("enabled")
        return AlertPolicy(
            name=str(document.get("name", name)),
            display_name=str(document.get("displayName", "")),
            enabled=enabled if isinstance(enabled, bool) else None,
        )

    def get_log_metric(self, project: str, name: str) -> LogMetric | None:
        url = f"{self._endpoints.logging}/v2/projects/{project}/metrics/{quote(name, safe='')}"
        document = self._get_or_none(url)
        if document is None:
            return None
        return LogMetric(
            name=str(document.get("name", name)),
            filter=str(document.get("filter", "")),
            disabled=document.get("disabled") is True,
        )
