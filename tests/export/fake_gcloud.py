#!/usr/bin/env python3
"""A fake `gcloud` for the export tests, kept as honest as the real one where the script cares.

It answers the commands the export script runs (`sql export sql` plain or `--parallel
[--threads=N]`, `sql operations wait`, `sql operations describe`, `storage objects describe`,
`storage objects list`, `storage cat`, `storage objects update`) over a JSON state file
named by $FAKE_GCLOUD_STATE that holds the project, the instance, the bucket's objects (their
bytes live in files next to the state), the operations and a log of every argv it was called
with. Like gcloud it rejects unknown flags (exit 2),
prints JSON for --format=json, and fails with exit 1 and gcloud's own error wording:

- busy instance: "HTTPError 409: Operation failed because another operation was already in
  progress. ..." (Cloud SQL Admin API error reason operationInProgress);
- caller without cloudsql.instances.export: "HTTPError 403: The client is not authorized to make
  this request.";
- `operations wait` on a failed operation: "[CODE] message" from the operation's error.errors[0]
  (googlecloudsdk/api_lib/sql/operations.py), on a slow one, after --timeout seconds:
  "Operation <selfLink> is taking longer than expected. ...";
- `storage objects describe` of a missing object: "gs://BUCKET/OBJECT not found: 404."
  (googlecloudsdk/api_lib/storage/errors.py); `storage cat` of one: "The following URLs matched
  no objects or files:" and the URL (googlecloudsdk/command_lib/storage/name_expansion.py);
- reading an object without storage.objects.get (describe and cat alike): "HTTPError 403:
  ACCOUNT does not have storage.objects.get access to the Google Cloud Storage object.
  Permission 'storage.objects.get' denied on resource (or it may not exist)." (Cloud Storage's
  own 403 text, which gcloud prints after "HTTPError 403: ").
- `storage objects update --retain-until T --retention-mode M` (Object Retention Lock) on a missing
  object: "The following URLs matched no objects or files: ..." (gcloud storage's wording for an URL
  that matches nothing); without storage.objects.setRetention (state caller_can_set_retention=false):
  HTTPError 403 naming that permission, like the describe error above; in a bucket created without
  object retention (state bucket_object_retention=false), shortening a retention without
  --override-unlocked-retention, or shortening a Locked one at all: HTTPError 400 (Google does not
  document these texts; the fake's say what the API refuses). --retention-mode takes only Locked or
  Unlocked and --retain-until an RFC 3339 time (exit 2 otherwise, like gcloud's argument parser).

What an export does is set per database in the state (instances.<name>.outcomes):
"ok" (writes the object: the bytes of the file dump_files.<database>, else default_dump_file,
as Cloud SQL would have written them), "operation_error" (DONE with state.operation_error),
"no_object" (DONE, nothing written), "hang" (never finishes),
"wait_breaks_off" (the first wait fails with HTTP 503 while the export still runs) and
"wait_breaks_off_after_done" (the same, but the export has already finished). A database the
instance does not have fails like pg_dump would ('database "X" does not exist'; that wording is
pg_dump's, the exact text Cloud SQL wraps around it is not documented). instances.<name>.
busy_responses answers 409 that many times; caller_can_export=false answers 403.
read_stalls_after_bytes=N makes `storage cat` stop after N bytes and hang (its pid is appended
to stalled_readers), as a download does when the network stalls.

A parallel export (`--parallel`, the URI a folder) writes every file of the directory
dump_dirs.<database>, else default_dump_dir, as objects FOLDER/<relative path>, as Cloud SQL's
pg_dump --jobs would have; a folder that already holds an object fails the operation (assumed by
analogy with the single-file rule; Google does not document it). --threads takes an integer or
`unlimited` (gcloud's BoundedInt(unlimited=True), no bounds; otherwise "Value must be an integer",
exit 2) and is only simulated with --parallel. `storage objects list PATTERN` lists the objects matching an exact
name or a trailing `**` wildcard as a JSON list (`[]` when none match, as gcloud's list.py does
with error_on_missing_key=False); without storage.objects.list (state caller_can_list_bucket=false)
it answers HTTPError 403 naming that permission. `objects update` takes several URLs.

Real flags this fake does not simulate (e.g. --raw, --table) make it exit 3 so a test notices.
The tests copy this file into a temporary directory under the name `gcloud`.
"""

from __future__ import annotations

import calendar
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATE_ENV = "FAKE_GCLOUD_STATE"
SQLADMIN = "https://sqladmin.googleapis.com/sql/v1beta4"
NOT_SIMULATED_EXIT = 3

BUSY_MESSAGE = (
    "HTTPError 409: Operation failed because another operation was already in progress. "
    "Try your request after the current operation is complete."
)
NOT_AUTHORIZED_MESSAGE = "HTTPError 403: The client is not authorized to make this request."
POLL_FAILED_MESSAGE = "HTTPError 503: The service is currently unavailable."


@dataclass(frozen=True)
class CommandSpec:
    """The argv shape of one real gcloud command: positionals and its own flags."""

    min_positionals: int
    max_positionals: int | None
    # flag -> True when it takes a value
    flags: dict[str, bool]
    # real flags whose behaviour this fake does not model
    unsimulated: frozenset[str] = field(default_factory=frozenset)


GLOBAL_FLAGS = {
    "--project": True,
    "--format": True,
    "--quiet": False,
    "-q": False,
    "--verbosity": True,
    "--account": True,
    "--impersonate-service-account": True,
    "--billing-project": True,
}

COMMANDS: dict[tuple[str, ...], CommandSpec] = {
    ("sql", "export", "sql"): CommandSpec(
        2,
        2,
        {
            "--async": False,
            "--database": True,
            "-d": True,
            "--offload": False,
            "--clean": False,
            "--if-exists": False,
            "--parallel": False,
            "--threads": True,
            "--table": True,
            "-t": True,
        },
        frozenset({"--clean", "--if-exists", "--table", "-t"}),
    ),
    ("storage", "objects", "list"): CommandSpec(
        1,
        1,
        {"--raw": False, "--exhaustive": False, "--limit": True, "--soft-deleted": False},
        frozenset({"--raw", "--exhaustive", "--limit", "--soft-deleted"}),
    ),
    ("storage", "objects", "update"): CommandSpec(
        1,
        None,
        {
            "--retain-until": True,
            "--retention-mode": True,
            "--override-unlocked-retention": False,
            "--clear-retention": False,
            "--all-versions": False,
            "--recursive": False,
            "--storage-class": True,
            "--temporary-hold": False,
            "--event-based-hold": False,
        },
        frozenset(
            {
                "--clear-retention",
                "--all-versions",
                "--recursive",
                "--storage-class",
                "--temporary-hold",
                "--event-based-hold",
            }
        ),
    ),
    ("sql", "operations", "wait"): CommandSpec(1, None, {"--timeout": True}),
    ("sql", "operations", "describe"): CommandSpec(1, 1, {}),
    ("storage", "cat"): CommandSpec(
        1,
        None,
        {
            "--display-url": False,
            "-d": False,
            "--range": True,
            "-r": True,
            "--additional-headers": True,
            "--decryption-keys": True,
        },
        frozenset(
            {"--display-url", "-d", "--range", "-r", "--additional-headers", "--decryption-keys"}
        ),
    ),
    ("storage", "objects", "describe"): CommandSpec(
        1,
        1,
        {
            "--raw": False,
            "--soft-deleted": False,
            "--fetch-encrypted-object-hashes": False,
            "--additional-headers": True,
            "--decryption-keys": True,
        },
        frozenset(
            {
                "--raw",
                "--soft-deleted",
                "--fetch-encrypted-object-hashes",
                "--additional-headers",
                "--decryption-keys",
            }
        ),
    ),
}


class GcloudError(Exception):
    """Stop with gcloud's exit code after printing its error line."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Invocation:
    """A parsed command line."""

    command: tuple[str, ...]
    positionals: list[str]
    flags: dict[str, str | bool]

    @property
    def label(self) -> str:
        return "gcloud." + ".".join(self.command)

    def fail(self, message: str, code: int = 1) -> GcloudError:
        return GcloudError(code, f"ERROR: ({self.label}) {message}")


def parse(argv: list[str]) -> Invocation:
    depth = 2 if tuple(argv[:2]) == ("storage", "cat") else 3
    command = tuple(argv[:depth])
    spec = COMMANDS.get(command)
    if spec is None:
        raise GcloudError(NOT_SIMULATED_EXIT, f"fake gcloud does not simulate {' '.join(argv)}")
    known = {**GLOBAL_FLAGS, **spec.flags}
    invocation = Invocation(command, [], {})
    rest = argv[depth:]
    while rest:
        token = rest.pop(0)
        if not token.startswith("-"):
            invocation.positionals.append(token)
            continue
        name, has_value, value = token.partition("=")
        if name not in known:
            raise invocation.fail(f"unrecognized arguments: {token}", code=2)
        if name in spec.unsimulated:
            raise GcloudError(NOT_SIMULATED_EXIT, f"fake gcloud does not simulate {name}")
        if known[name] and not has_value:
            if not rest:
                raise invocation.fail(f"argument {name}: expected one argument", code=2)
            value = rest.pop(0)
        elif not known[name] and has_value:
            raise invocation.fail(f"argument {name}: ignored explicit argument '{value}'", 2)
        invocation.flags[name] = value if known[name] else True
    check_positionals(invocation, spec)
    return invocation


def check_positionals(invocation: Invocation, spec: CommandSpec) -> None:
    count = len(invocation.positionals)
    if count < spec.min_positionals:
        raise invocation.fail("a required positional argument is missing", code=2)
    if spec.max_positionals is not None and count > spec.max_positionals:
        extra = invocation.positionals[spec.max_positionals :]
        raise invocation.fail(f"unrecognized arguments: {' '.join(extra)}", code=2)
    if invocation.flags.get("--format") not in (None, "json"):
        raise GcloudError(NOT_SIMULATED_EXIT, "fake gcloud only prints --format=json")


class FakeCloud:
    """The simulated project: one Cloud SQL instance and one bucket."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    def run(self, invocation: Invocation) -> None:
        if invocation.command[0] == "sql":
            self.check_sql_project(invocation)
        handlers: dict[tuple[str, ...], Callable[[Invocation], None]] = {
            ("sql", "export", "sql"): self.export_sql,
            ("sql", "operations", "wait"): self.wait,
            ("sql", "operations", "describe"): self.describe_operation,
            ("storage", "objects", "describe"): self.describe_object,
            ("storage", "objects", "list"): self.list_objects,
            ("storage", "cat"): self.cat,
            ("storage", "objects", "update"): self.set_retention,
        }
        handlers[invocation.command](invocation)

    # --- Cloud SQL -------------------------------------------------------------------------

    def check_sql_project(self, invocation: Invocation) -> None:
        """Cloud SQL commands need a project; Cloud Storage ones name the bucket instead."""
        project = invocation.flags.get("--project")
        if not isinstance(project, str):
            raise invocation.fail("The required property [project] is not currently set.")
        if project != self.state["project"]:
            raise invocation.fail(NOT_AUTHORIZED_MESSAGE)

    def export_sql(self, invocation: Invocation) -> None:
        instance_name, uri = invocation.positionals
        instance = self.state["instances"].get(instance_name)
        if instance is None:
            raise invocation.fail("HTTPError 404: The Cloud SQL instance does not exist.")
        if not instance.get("caller_can_export", True):
            raise invocation.fail(NOT_AUTHORIZED_MESSAGE)
        if instance.get("busy_responses", 0) > 0:
            instance["busy_responses"] -= 1
            raise invocation.fail(BUSY_MESSAGE)
        if self.blocked_by_running_export(instance_name, invocation.flags.get("--offload") is True):
            raise invocation.fail(BUSY_MESSAGE)
        database = invocation.flags.get("--database", invocation.flags.get("-d"))
        if not isinstance(database, str):
            raise GcloudError(NOT_SIMULATED_EXIT, "fake gcloud needs --database")
        check_threads(invocation)
        operation = self.new_operation(instance_name, uri, database, invocation)
        if invocation.flags.get("--async") is not True:
            raise GcloudError(NOT_SIMULATED_EXIT, "fake gcloud only simulates --async exports")
        print(json.dumps(public(operation), indent=2))

    def blocked_by_running_export(self, instance_name: str, offload: bool) -> bool:
        """Cloud SQL runs one operation at a time per instance; only a running serverless
        (offloaded) export lets a standard export through, not another serverless one."""
        running = [
            operation
            for operation in self.state["operations"].values()
            if operation["targetId"] == instance_name and operation["status"] != "DONE"
        ]
        if offload:
            return bool(running)
        return any(not operation["exportContext"]["offload"] for operation in running)

    def new_operation(
        self, instance_name: str, uri: str, database: str, invocation: Invocation
    ) -> dict[str, Any]:
        instance = self.state["instances"][instance_name]
        outcome = instance.get("outcomes", {}).get(database, "ok")
        if database not in instance["databases"]:
            outcome = "missing_database"
        name = str(uuid.uuid4())
        project = self.state["project"]
        operation = {
            "kind": "sql#operation",
            "name": name,
            "operationType": "EXPORT",
            "status": "PENDING",
            "targetId": instance_name,
            "targetProject": project,
            "targetLink": f"{SQLADMIN}/projects/{project}/instances/{instance_name}",
            "selfLink": f"{SQLADMIN}/projects/{project}/operations/{name}",
            "user": self.state["account"],
            "insertTime": now_rfc3339(),
            "exportContext": {
                "kind": "sql#exportContext",
                "fileType": "SQL",
                "uri": uri,
                "databases": [database],
                "offload": invocation.flags.get("--offload") is True,
                "sqlExportOptions": sql_export_options(invocation),
            },
            "_outcome": outcome,
            "_waits": 0,
        }
        self.state["operations"][name] = operation
        return operation

    def operation(self, invocation: Invocation, name: str) -> dict[str, Any]:
        operation = self.state["operations"].get(name)
        if operation is None:
            raise invocation.fail("HTTPError 404: The Cloud SQL operation does not exist.")
        found: dict[str, Any] = operation
        return found

    def wait(self, invocation: Invocation) -> None:
        timeout = parse_timeout(invocation)
        finished = [self.wait_one(invocation, name, timeout) for name in invocation.positionals]
        print(json.dumps([public(operation) for operation in finished], indent=2))

    def wait_one(self, invocation: Invocation, name: str, timeout: int | None) -> dict[str, Any]:
        operation = self.operation(invocation, name)
        operation["_waits"] += 1
        if operation["status"] != "DONE":
            self.advance(invocation, operation, timeout)
        errors = operation.get("error", {}).get("errors", [])
        if errors:
            message = f"[{errors[0]['code']}] {errors[0]['message']}"
            raise invocation.fail(message.strip())
        return operation

    def advance(
        self, invocation: Invocation, operation: dict[str, Any], timeout: int | None
    ) -> None:
        outcome = operation["_outcome"]
        if outcome == "hang":
            self.hang(invocation, operation, timeout)
        if outcome == "wait_breaks_off" and operation["_waits"] == 1:
            # gcloud's polling gives up on an HTTP error; the export itself runs on.
            operation["status"] = "RUNNING"
            raise invocation.fail(POLL_FAILED_MESSAGE)
        self.finish(operation)
        if outcome == "wait_breaks_off_after_done" and operation["_waits"] == 1:
            raise invocation.fail(POLL_FAILED_MESSAGE)

    def hang(self, invocation: Invocation, operation: dict[str, Any], timeout: int | None) -> None:
        """gcloud polls until --timeout seconds have passed, then gives up; the export runs on."""
        operation["status"] = "RUNNING"
        save_state(self.state)
        time.sleep(timeout if timeout is not None else 3600)
        project = self.state["project"]
        name = operation["name"]
        raise invocation.fail(
            f"Operation {operation['selfLink']} is taking longer than expected. You can continue "
            f"waiting for the operation by running `gcloud beta sql operations wait --project "
            f"{project} {name}`"
        )

    def finish(self, operation: dict[str, Any]) -> None:
        outcome = operation["_outcome"]
        uri = operation["exportContext"]["uri"]
        database = operation["exportContext"]["databases"][0]
        operation["status"] = "DONE"
        operation["endTime"] = now_rfc3339()
        parallel = operation["exportContext"]["sqlExportOptions"].get("parallel", False)
        if outcome in ("ok", "wait_breaks_off", "wait_breaks_off_after_done") and parallel:
            self.write_folder(operation, uri, database)
        elif outcome in ("ok", "wait_breaks_off", "wait_breaks_off_after_done"):
            if self.object(uri) is not None:
                # ExportContext.uri: "If the file already exists, the request succeeds, but the
                # operation fails." (the exact error text is not documented)
                self.fail_operation(operation, "ERROR_RDBMS", f"{uri} already exists.")
                return
            dump = self.state["dump_files"].get(database, self.state["default_dump_file"])
            self.write_object(uri, Path(dump).read_bytes())
        elif outcome == "missing_database":
            self.fail_operation(
                operation,
                "ERROR_RDBMS",
                f'pg_dump: error: connection to server failed: FATAL:  database "{database}" '
                "does not exist",
            )
        elif outcome == "operation_error":
            error = self.state["operation_error"]
            self.fail_operation(operation, error["code"], error["message"])
        elif outcome != "no_object":
            raise GcloudError(NOT_SIMULATED_EXIT, f"unknown outcome {outcome!r} in the fake state")

    def write_folder(self, operation: dict[str, Any], folder: str, database: str) -> None:
        """pg_dump --jobs wrote a directory; Cloud SQL uploads each of its files into the folder."""
        if self.objects_under(folder):
            self.fail_operation(operation, "ERROR_RDBMS", f"{folder} already exists.")
            return
        directory = self.state["dump_dirs"].get(database) or self.state.get("default_dump_dir")
        if directory is None:
            raise GcloudError(NOT_SIMULATED_EXIT, f"the fake state has no dump_dirs.{database}")
        source = Path(directory)
        for path in sorted(source.rglob("*")):
            if path.is_file():
                self.write_object(
                    f"{folder}/{path.relative_to(source).as_posix()}", path.read_bytes()
                )

    def objects_under(self, folder: str) -> list[str]:
        bucket, _, prefix = folder.removeprefix("gs://").partition("/")
        if bucket != self.state["bucket"]:
            return []
        return [name for name in self.state["objects"] if name.startswith(f"{prefix}/")]

    @staticmethod
    def fail_operation(operation: dict[str, Any], code: str, message: str) -> None:
        operation["error"] = {
            "kind": "sql#operationErrors",
            "errors": [{"kind": "sql#operationError", "code": code, "message": message}],
        }

    def describe_operation(self, invocation: Invocation) -> None:
        operation = self.operation(invocation, invocation.positionals[0])
        print(json.dumps(public(operation), indent=2))

    # --- Cloud Storage ---------------------------------------------------------------------

    def check_can_read(self, invocation: Invocation) -> None:
        if not self.state.get("caller_can_read_bucket", True):
            account = self.state["account"]
            raise invocation.fail(
                f"HTTPError 403: {account} does not have storage.objects.get access to the "
                "Google Cloud Storage object. Permission 'storage.objects.get' denied on "
                "resource (or it may not exist)."
            )

    def cat(self, invocation: Invocation) -> None:
        """The objects' bytes as stored, one after the other, streamed to stdout."""
        self.check_can_read(invocation)
        found = [(url, self.object(url)) for url in invocation.positionals]
        missing = [url for url, entry in found if entry is None]
        if missing:
            raise invocation.fail(
                "The following URLs matched no objects or files:\n" + "\n".join(missing)
            )
        stall_after = self.state.get("read_stalls_after_bytes")
        sent = 0
        for _, entry in found:
            assert entry is not None
            with self.content_path(entry).open("rb") as content:
                while chunk := content.read(1 << 16 if stall_after is None else stall_after):
                    sys.stdout.buffer.write(chunk)
                    sent += len(chunk)
                    if stall_after is not None and sent >= stall_after:
                        self.stall()
        sys.stdout.buffer.flush()

    def stall(self) -> None:
        """A download that stops making progress (network trouble): gcloud just waits."""
        sys.stdout.buffer.flush()
        self.state["stalled_readers"].append(os.getpid())
        save_state(self.state)
        time.sleep(3600)

    def list_objects(self, invocation: Invocation) -> None:
        """Objects matching an exact URL or one ending in `**`, like `objects list --format=json`."""
        if not self.state.get("caller_can_list_bucket", True):
            raise invocation.fail(
                f"HTTPError 403: {self.state['account']} does not have storage.objects.list access "
                "to the Google Cloud Storage bucket. Permission 'storage.objects.list' denied on "
                "resource (or it may not exist)."
            )
        pattern = invocation.positionals[0]
        bucket, _, name_pattern = pattern.removeprefix("gs://").partition("/")
        if "*" in name_pattern.removesuffix("**"):
            raise GcloudError(NOT_SIMULATED_EXIT, "fake gcloud only lists NAME or PREFIX**")
        matches = []
        if bucket == self.state["bucket"]:
            for name, entry in sorted(self.state["objects"].items()):
                wanted = (
                    name.startswith(name_pattern[:-2])
                    if name_pattern.endswith("**")
                    else name == name_pattern
                )
                if wanted:
                    matches.append(self.object_json(bucket, name, entry))
        print(json.dumps(matches, indent=2))

    @staticmethod
    def object_json(bucket: str, name: str, entry: dict[str, Any]) -> dict[str, Any]:
        """An object as `storage objects describe/list --format=json` prints it."""
        return {
            "bucket": bucket,
            "content_type": "application/octet-stream",
            "creation_time": entry["created"],
            "generation": str(entry["generation"]),
            "metageneration": 1,
            "name": name,
            "size": entry["size"],
            "storage_class": "STANDARD",
            "storage_url": f"gs://{bucket}/{name}#{entry['generation']}",
        }

    def describe_object(self, invocation: Invocation) -> None:
        url = invocation.positionals[0]
        self.check_can_read(invocation)
        found = self.object(url)
        if found is None:
            raise invocation.fail(f"{url} not found: 404.")
        bucket, _, name = url.removeprefix("gs://").partition("/")
        print(json.dumps(self.object_json(bucket, name, found), indent=2))

    def set_retention(self, invocation: Invocation) -> None:
        """`objects update URL... --retain-until --retention-mode`: the only update the export
        makes. Like gcloud without --continue-on-error, the first URL that fails stops it."""
        mode = invocation.flags.get("--retention-mode")
        until_text = invocation.flags.get("--retain-until")
        if not isinstance(mode, str) or not isinstance(until_text, str):
            raise GcloudError(NOT_SIMULATED_EXIT, "fake gcloud sets retain-until and mode together")
        if mode not in ("Locked", "Unlocked"):
            raise invocation.fail(
                f"argument --retention-mode: Invalid choice: '{mode}'. Valid choices are "
                "[Locked, Unlocked].",
                code=2,
            )
        until = parse_rfc3339(invocation, until_text)
        if not self.state.get("caller_can_set_retention", True):
            raise invocation.fail(
                f"HTTPError 403: {self.state['account']} does not have storage.objects.setRetention "
                "access to the Google Cloud Storage object. Permission 'storage.objects.setRetention' "
                "denied on resource (or it may not exist)."
            )
        for url in invocation.positionals:
            found = self.object(url)
            if found is None:
                raise invocation.fail(f"The following URLs matched no objects or files:\n-{url}")
            if not self.state.get("bucket_object_retention", True):
                raise invocation.fail(
                    "HTTPError 400: Object retention is not enabled for this bucket; it can only "
                    "be enabled when the bucket is created."
                )
            self.check_not_shortened(invocation, found.get("retention"), until)
            found["retention"] = {"mode": mode, "retainUntilTime": until_text}
            print(f"Updating {url}#{found['generation']}...", file=sys.stderr)

    @staticmethod
    def check_not_shortened(
        invocation: Invocation, current: dict[str, str] | None, until: float
    ) -> None:
        if current is None:
            return
        if until >= parse_rfc3339(invocation, current["retainUntilTime"]):
            return
        if current["mode"] == "Locked":
            raise invocation.fail(
                "HTTPError 400: The retention of an object in Locked mode cannot be shortened."
            )
        if invocation.flags.get("--override-unlocked-retention") is not True:
            raise invocation.fail(
                "HTTPError 400: Shortening an Unlocked retention needs --override-unlocked-retention."
            )

    def object(self, uri: str) -> dict[str, Any] | None:
        bucket, _, name = uri.removeprefix("gs://").partition("/")
        if bucket != self.state["bucket"]:
            return None
        found: dict[str, Any] | None = self.state["objects"].get(name)
        return found

    def write_object(self, uri: str, content: bytes) -> None:
        bucket, _, name = uri.removeprefix("gs://").partition("/")
        if bucket != self.state["bucket"]:
            raise GcloudError(NOT_SIMULATED_EXIT, f"the fake has no bucket {bucket}")
        entry = {
            "size": len(content),
            "generation": time.time_ns() // 1000,
            "created": now_rfc3339(),
        }
        self.content_path(entry).write_bytes(content)
        self.state["objects"][name] = entry

    @staticmethod
    def content_path(entry: dict[str, Any]) -> Path:
        """Where an object version's bytes are kept: next to the state, by generation."""
        folder = state_path().parent / "bucket-contents"
        folder.mkdir(exist_ok=True)
        return folder / f"{entry['generation']}.bin"


def check_threads(invocation: Invocation) -> None:
    """--threads: gcloud's BoundedInt(unlimited=True) takes any integer, or `unlimited`
    (googlecloudsdk/calliope/arg_parsers.py _BoundedType)."""
    threads = invocation.flags.get("--threads")
    if threads is None:
        return
    if invocation.flags.get("--parallel") is not True:
        raise GcloudError(
            NOT_SIMULATED_EXIT, "fake gcloud simulates --threads only with --parallel"
        )
    if threads != "unlimited" and not str(threads).lstrip("-").isdigit():
        raise invocation.fail(
            f"argument --threads: Value must be an integer; received: {threads}", code=2
        )


def sql_export_options(invocation: Invocation) -> dict[str, Any]:
    """ExportContext.sqlExportOptions as gcloud builds it (api_lib/sql/export_util.py)."""
    if invocation.flags.get("--parallel") is not True:
        return {}
    options: dict[str, Any] = {"parallel": True}
    threads = invocation.flags.get("--threads")
    if isinstance(threads, str) and threads != "unlimited":
        options["threads"] = int(threads)
    return options


def parse_timeout(invocation: Invocation) -> int | None:
    """--timeout is a whole number of seconds >= 0 or `unlimited`; 0 and unlimited never stop."""
    raw = invocation.flags.get("--timeout", "300")
    if raw == "unlimited":
        return None
    if not isinstance(raw, str) or not raw.isdigit():
        raise invocation.fail(f"argument --timeout: invalid value: {raw}", code=2)
    return int(raw) or None


def parse_rfc3339(invocation: Invocation, text: str) -> float:
    """Seconds since the epoch of an RFC 3339 UTC time such as 2026-02-01T03:30:00Z."""
    try:
        return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        raise invocation.fail(
            f"argument --retain-until: Failed to parse date/time: {text}", code=2
        ) from None


def public(operation: dict[str, Any]) -> dict[str, Any]:
    """The operation as gcloud prints it: without the fake's bookkeeping fields."""
    return {key: value for key, value in operation.items() if not key.startswith("_")}


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def state_path() -> Path:
    return Path(os.environ[STATE_ENV])


def load_state() -> dict[str, Any]:
    state: dict[str, Any] = json.loads(state_path().read_text())
    return state


def save_state(state: dict[str, Any]) -> None:
    temporary = state_path().with_suffix(".tmp")
    temporary.write_text(json.dumps(state, indent=2))
    temporary.replace(state_path())


def main(argv: list[str]) -> int:
    state = load_state()
    state["calls"].append(argv)
    save_state(state)
    try:
        FakeCloud(state).run(parse(argv))
    except GcloudError as stop:
        print(str(stop), file=sys.stderr)
        return stop.code
    finally:
        save_state(state)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
