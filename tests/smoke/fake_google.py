"""A fake Google Cloud project for the smoke test, served over HTTP the way Google's REST APIs answer.

Mounted as a ``requests`` transport adapter, it answers the very requests ``ops/smoke/rest.py`` sends:
Cloud Run v2 ``jobs.run`` (an Operation whose metadata is the Execution) and ``executions.get``, Cloud
Storage ``objects.list`` (``size`` as a string, paged) and ranged media downloads (206), Cloud Logging
``entries.list`` (filtered by job, execution label and event, paged) and ``projects.metrics.get``, and
Monitoring ``alertPolicies.get``. Errors are Google's JSON error documents: 404 ``NOT_FOUND`` for what
does not exist, 403 ``PERMISSION_DENIED`` for what the caller was not granted.

An execution runs like the real job: it stays running for ``polls_until_done`` reads, then the export
"script" writes one gzip object per database under ``cloudsql/<instance>/<db>/<UTC>.sql.gz`` and one JSON
log line per database, which Cloud Logging returns only after ``log_delay_reads`` more reads (ingestion
lag). Knobs make it fail the ways production can.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import requests
from requests.adapters import HTTPAdapter

RUN = "https://run.googleapis.com"
STORAGE = "https://storage.googleapis.com"
LOGGING = "https://logging.googleapis.com"
MONITORING = "https://monitoring.googleapis.com"
START = datetime(2026, 12, 5, 9, 0, 0, tzinfo=UTC)
_FILTER_CLAUSE = re.compile(r'(\S+)="([^"]*)"')


@dataclass
class FakeClock:
    now: datetime = START

    def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def monotonic(self) -> float:
        return (self.now - START).total_seconds()


@dataclass
class FakeExecution:
    name: str
    create_time: datetime
    reads_left: int
    completion_time: datetime | None = None


@dataclass
class FakeGoogle:
    project: str
    region: str
    instance: str
    bucket: str
    job: str
    databases: tuple[str, ...]
    clock: FakeClock = field(default_factory=FakeClock)
    # name -> enabled (None: Monitoring leaves the field out)
    alert_policies: dict[str, bool | None] = field(default_factory=dict)
    # name -> filter
    log_metrics: dict[str, str] = field(default_factory=dict)
    disabled_metrics: set[str] = field(default_factory=set)
    # Failure knobs.
    denied: set[str] = field(default_factory=set)  # "run", "storage", "logging", "monitoring"
    polls_until_done: int = 2
    log_delay_reads: int = 1
    execution_fails: str = ""  # the Completed condition's message when the task fails
    empty_for: set[str] = field(default_factory=set)
    unverified_for: set[str] = field(default_factory=set)
    no_log_for: set[str] = field(default_factory=set)
    log_bytes_off_by: int = 0
    # Databases exported with EXPORT_FORMAT=parallel: a folder of files, its URI in the line.
    parallel_for: set[str] = field(default_factory=set)
    # State.
    objects: dict[str, tuple[bytes, datetime]] = field(default_factory=dict)
    log_entries: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    executions: dict[str, FakeExecution] = field(default_factory=dict)
    log_reads: int = 0
    requests_seen: list[str] = field(default_factory=list)

    # -- Helpers for tests ------------------------------------------------------------------

    def session(self) -> requests.Session:
        session = requests.Session()
        adapter = _Adapter(self)
        for endpoint in (RUN, STORAGE, LOGGING, MONITORING):
            session.mount(endpoint, adapter)
        return session

    def put_object(self, name: str, content: bytes, created: datetime) -> None:
        self.objects[name] = (content, created)

    # -- The simulated job ------------------------------------------------------------------

    def _finish(self, execution: FakeExecution) -> None:
        execution.completion_time = self.clock.now
        if self.execution_fails:
            return
        short = execution.name.rsplit("/", 1)[-1]
        for database in self.databases:
            stamp = self.clock.now.strftime("%Y%m%dT%H%M%SZ")
            name = f"cloudsql/{self.instance}/{database}/{stamp}.sql.gz"
            content = gzip.compress(f"-- dump of {database}\n".encode())
            if database in self.empty_for:
                content = b""
            if database in self.parallel_for:
                name = name.removesuffix(".sql.gz")
                files = {
                    "toc.dat": b"PGDMP" + bytes(60),
                    "3001.dat.gz": content,
                    "3002.dat.gz": content,
                }
                for file_name, file_content in files.items():
                    self.put_object(f"{name}/{file_name}", file_content, self.clock.now)
                content = b"".join(files.values())
            else:
                self.put_object(name, content, self.clock.now)
            if database in self.no_log_for:
                continue
            record = {
                "severity": "INFO",
                "event": "cloudsql_export",
                "status": "succeeded",
                "project": self.project,
                "instance": self.instance,
                "database": database,
                "object": f"gs://{self.bucket}/{name}",
                "format": "parallel" if database in self.parallel_for else "sql.gz",
                "bytes": len(content) + self.log_bytes_off_by,
                "uncompressed_bytes": 0 if database in self.unverified_for else 4096,
            }
            entry = {
                "jsonPayload": record,
                "resource": {"type": "cloud_run_job", "labels": {"job_name": self.job}},
                "labels": {"run.googleapis.com/execution_name": short},
            }
            self.log_entries.append((self.log_reads + self.log_delay_reads, entry))

    # -- HTTP -------------------------------------------------------------------------------

    def handle(self, request: requests.PreparedRequest) -> tuple[int, Any, dict[str, str]]:
        url = urlsplit(str(request.url))
        origin = f"{url.scheme}://{url.netloc}"
        path = unquote(url.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        raw = request.body
        body = json.loads(raw) if isinstance(raw, (str, bytes)) and raw else {}
        self.requests_seen.append(f"{request.method} {origin}{url.path}")
        service = {RUN: "run", STORAGE: "storage", LOGGING: "logging", MONITORING: "monitoring"}[
            origin
        ]
        if service in self.denied:
            return _error(
                403, "PERMISSION_DENIED", f"The caller does not have permission ({service})"
            )
        if service == "run":
            return self._run(str(request.method), path)
        if service == "storage":
            return self._storage(path, query)
        if service == "logging":
            return self._logging(str(request.method), path, body)
        return self._monitoring(path)

    def _run(self, method: str, path: str) -> tuple[int, Any, dict[str, str]]:
        job_path = f"/v2/projects/{self.project}/locations/{self.region}/jobs/{self.job}"
        if method == "POST" and path == f"{job_path}:run":
            short = f"{self.job}-{len(self.executions) + 1:05d}"
            name = f"projects/{self.project}/locations/{self.region}/jobs/{self.job}/executions/{short}"
            self.executions[name] = FakeExecution(name, self.clock.now, self.polls_until_done)
            operation = {
                "name": f"projects/{self.project}/locations/{self.region}/operations/{short}",
                "metadata": {
                    "@type": "type.googleapis.com/google.cloud.run.v2.Execution",
                    "name": name,
                },
                "done": False,
            }
            return 200, operation, {}
        if method == "POST" and path.endswith(":run"):
            return _error(404, "NOT_FOUND", f"Resource '{path[4:-4]}' was not found")
        execution = self.executions.get(path.removeprefix("/v2/"))
        if method != "GET" or execution is None:
            return _error(404, "NOT_FOUND", f"Resource '{path[4:]}' was not found")
        if execution.completion_time is None:
            if execution.reads_left <= 0:
                self._finish(execution)
            execution.reads_left -= 1
        return 200, self._execution_document(execution), {}

    def _execution_document(self, execution: FakeExecution) -> dict[str, Any]:
        document: dict[str, Any] = {
            "name": execution.name,
            "createTime": execution.create_time.isoformat().replace("+00:00", "Z"),
            "taskCount": 1,
            "logUri": f"https://console.cloud.google.com/logs/viewer?project={self.project}",
        }
        if execution.completion_time is None:
            document["runningCount"] = 1
            return document
        document["completionTime"] = execution.completion_time.isoformat().replace("+00:00", "Z")
        if self.execution_fails:
            document["failedCount"] = 1
            state, message = "CONDITION_FAILED", self.execution_fails
        else:
            document["succeededCount"] = 1
            state, message = "CONDITION_SUCCEEDED", "Execution completed successfully."
        document["conditions"] = [{"type": "Completed", "state": state, "message": message}]
        return document

    def _storage(self, path: str, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        prefix = f"/storage/v1/b/{self.bucket}/o"
        if not path.startswith(prefix):
            return _error(404, "NOT_FOUND", "The specified bucket does not exist.")
        if path == prefix:
            names = sorted(n for n in self.objects if n.startswith(query.get("prefix", "")))
            start = int(query.get("pageToken", "0"))
            page = names[start : start + 2]  # small pages, so paging is exercised
            items = [
                {
                    "kind": "storage#object",
                    "name": n,
                    "bucket": self.bucket,
                    "size": str(len(self.objects[n][0])),
                    "timeCreated": self.objects[n][1].isoformat().replace("+00:00", ".000Z"),
                }
                for n in page
            ]
            document: dict[str, Any] = {"kind": "storage#objects", "items": items}
            if start + 2 < len(names):
                document["nextPageToken"] = str(start + 2)
            return 200, document, {}
        # The deployer the smoke test runs as may list the exports but never read one
        # (infra/cloudsql_backups/ci_identity.py): a download is refused as Google refuses it.
        name = path[len(prefix) + 1 :]
        return _error(
            403,
            "PERMISSION_DENIED",
            f"deployer does not have storage.objects.get access to the Google Cloud Storage "
            f"object. Permission 'storage.objects.get' denied on resource (or it may not exist): "
            f"{self.bucket}/{name}",
        )

    def _logging(
        self, method: str, path: str, body: dict[str, Any]
    ) -> tuple[int, Any, dict[str, str]]:
        metric_prefix = f"/v2/projects/{self.project}/metrics/"
        if method == "GET" and path.startswith(metric_prefix):
            name = path[len(metric_prefix) :]
            if name not in self.log_metrics:
                return _error(404, "NOT_FOUND", f"Metric {name} does not exist.")
            metric: dict[str, Any] = {"name": name, "filter": self.log_metrics[name]}
            if name in self.disabled_metrics:
                metric["disabled"] = True
            return 200, metric, {}
        if method != "POST" or path != "/v2/entries:list":
            return _error(404, "NOT_FOUND", "Not found")
        if body.get("resourceNames") != [f"projects/{self.project}"]:
            return _error(403, "PERMISSION_DENIED", "The caller does not have permission")
        wanted = dict(_FILTER_CLAUSE.findall(body.get("filter", "")))
        self.log_reads += 1
        visible = [
            e for ready, e in self.log_entries if ready < self.log_reads and _matches(e, wanted)
        ]
        start = int(body.get("pageToken", "0"))
        document: dict[str, Any] = {"entries": visible[start : start + 1]}
        if start + 1 < len(visible):
            document["nextPageToken"] = str(start + 1)
        return 200, document, {}

    def _monitoring(self, path: str) -> tuple[int, Any, dict[str, str]]:
        name = path.removeprefix("/v3/")
        if name not in self.alert_policies:
            return _error(404, "NOT_FOUND", f"Requested entity was not found: {name}")
        document: dict[str, Any] = {
            "name": name,
            "displayName": f"policy {name.rsplit('/', 1)[-1]}",
        }
        if self.alert_policies[name] is not None:
            document["enabled"] = self.alert_policies[name]
        return 200, document, {}


def _matches(entry: dict[str, Any], wanted: dict[str, str]) -> bool:
    fields = {
        "resource.type": entry["resource"]["type"],
        "resource.labels.job_name": entry["resource"]["labels"]["job_name"],
        'labels."run.googleapis.com/execution_name"': entry["labels"][
            "run.googleapis.com/execution_name"
        ],
        "jsonPayload.event": entry["jsonPayload"]["event"],
    }
    return all(fields.get(key) == value for key, value in wanted.items())


def _error(status: int, reason: str, message: str) -> tuple[int, Any, dict[str, str]]:
    return status, {"error": {"code": status, "message": message, "status": reason}}, {}


class _Adapter(HTTPAdapter):
    def __init__(self, google: FakeGoogle) -> None:
        super().__init__()
        self._google = google

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        status, payload, headers = self._google.handle(request)
        response = requests.Response()
        response.status_code = status
        response.url = str(request.url)
        response.request = request
        response._content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        response.headers.update({"Content-Type": "application/json", **headers})
        response.reason = "OK" if status < 400 else "Error"
        return response
