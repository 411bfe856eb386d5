"""Logical export rules: the Cloud Scheduler jobs that start exports fire often enough and are not
paused; the Cloud Run jobs that run them stop in bounded time, retry a bounded number of times and
keep no secret in plain text.

Every Cloud Scheduler job and Cloud Run job this stack defines belongs to the backup path, so the
rules apply to all of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from policy_kit import Config, Resource, Setting, resource_policy
from property_access import Node, ValueUnknown, describe, numeric
from pulumi_policy import ResourceValidationPolicy, Severity
from schedules import InvalidScheduleError, gap_longer_than
from secret_detection import is_reference, secret_like_name, secret_like_value

SCHEDULER_JOB = "gcp:cloudscheduler/job:Job"
RUN_JOB = "gcp:cloudrunv2/job:Job"
_SCHEDULER_TYPES = frozenset({SCHEDULER_JOB})
_RUN_JOB_TYPES = frozenset({RUN_JOB})
DEFAULT_TIME_ZONE = "Etc/UTC"  # Cloud Scheduler's zone when timeZone is not set
DEFAULT_MAX_RETRIES = 3  # Cloud Run's retries when maxRetries is not set
DEFAULT_TIMEOUT = "600s"  # Cloud Run's task timeout when timeout is not set
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)s$")
_TASK = "template.template"
# Google's Cloud SDK images (https://github.com/GoogleCloudPlatform/cloud-sdk-docker): floating
# tags such as :stable, :slim, :alpine, :latest move; :VERSION-VARIANT (e.g. 576.0.0-stable) or a
# digest stays put.
TRUSTED_REGISTRIES = ["gcr.io/google.com/cloudsdktool/"]
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
_VERSION_TAG = re.compile(r":\d+(?:\.\d+)+(?:-[a-z0-9_]+)?$")


def _not_paused(job: Resource, _: Config) -> Iterator[str]:
    paused = job.props.at("paused")
    if paused.value is True:
        yield "paused = true: no export runs while the job is paused; set paused=False"


def _fires_often_enough(job: Resource, config: Config) -> Iterator[str]:
    schedule = job.props.at("schedule")
    zone = job.props.at("timeZone")
    if not schedule.value:
        yield "schedule is not set: the job never fires on its own"
        return
    time_zone = zone.value or DEFAULT_TIME_ZONE
    maximum = config["maximumIntervalHours"]
    try:
        gap = gap_longer_than(str(schedule.value), str(time_zone), float(maximum))
    except InvalidScheduleError as invalid:
        yield f"schedule = {describe(schedule.value)} ({time_zone}): {invalid}"
        return
    if gap is not None:
        yield (
            f"schedule = {describe(schedule.value)} ({time_zone}): {gap.hours:g} hours pass between "
            f"the runs of {gap.after:%Y-%m-%d %H:%M} and {gap.before:%Y-%m-%d %H:%M}, more than "
            f"the {maximum} allowed (maximumIntervalHours); run it at least that often"
        )


def _timeout(job: Resource, config: Config) -> Iterator[str]:
    timeout = job.props.at(f"{_TASK}.timeout")
    maximum_hours = config["maximumTimeoutHours"]
    if timeout.value is None:
        yield (
            f"{timeout.path} is not set: Cloud Run stops the task after its default of "
            f"{DEFAULT_TIMEOUT}, too short for a database export; set it explicitly"
        )
        return
    match = _DURATION.match(str(timeout.value))
    if match is None:
        yield f"{timeout.path} = {describe(timeout.value)}: not a duration such as '21600s'"
        return
    if float(match.group(1)) > maximum_hours * 3600:
        yield (
            f"{timeout.path} = {describe(timeout.value)}: longer than {maximum_hours} hours "
            "(maximumTimeoutHours), so a hung export could still hold the instance's single "
            "export slot when the next one is due; lower it"
        )


def _bounded_retries(job: Resource, config: Config) -> Iterator[str]:
    retries = job.props.at(f"{_TASK}.maxRetries")
    maximum = config["maximumRetries"]
    value = numeric(retries.value, DEFAULT_MAX_RETRIES)
    if value is None:
        yield f"{retries.path} = {describe(retries.value)}: not a number"
    elif value > maximum:
        source = "" if retries.value is not None else " (Cloud Run's default when not set)"
        yield (
            f"{retries.path} = {describe(value)}{source}: more than {maximum} retries "
            "(maximumRetries) repeat a failing export for hours; lower it"
        )


def _no_plaintext_secrets(job: Resource, _: Config) -> Iterator[str]:
    for container in job.props.at(f"{_TASK}.containers").elements():
        for env in container.at("envs").elements():
            yield from _env_problems(env)


def _env_problems(env: Node) -> Iterator[str]:
    if env.at("valueSource.secretKeyRef").value is not None:
        return  # Read from Secret Manager at run time: the right way.
    name = str(env.at("name").value or "")
    value = env.at("value")
    if value.unknown:
        if secret_like_name(name):
            # A secret-named variable fed from another resource's output: only the known value
            # can show whether it is a mere reference, so it must not pass unseen.
            raise ValueUnknown(value.path)
        # Other computed values come from resources' outputs, not from secrets typed into the
        # program; Analyze sees them, known, before the job is created or updated.
        return
    text = str(value.value or "")
    if not text:
        return
    if secret_like_name(name) and not is_reference(text):
        yield (
            f"{value.path} ({name}): a secret-named variable set in plain text; read it from "
            "Secret Manager with value_source.secret_key_ref"
        )
        return
    reason = secret_like_value(text)
    if reason is not None:
        yield (
            f"{value.path} ({name}): the value looks like {reason}; read it from Secret Manager "
            "with value_source.secret_key_ref"
        )


def _images(job: Resource) -> Iterator[Node]:
    for container in job.props.at(f"{_TASK}.containers").elements():
        yield container.at("image")


def _image_registry(job: Resource, config: Config) -> Iterator[str]:
    registries = list(config["allowedRegistries"])
    for image in _images(job):
        reference = str(image.value or "")
        if not any(reference.startswith(prefix) for prefix in registries):
            yield (
                f"{image.path} = {describe(image.value)}: not from an allowed registry "
                f"({', '.join(registries)}, allowedRegistries); the export job runs with access to "
                "the database and the backups"
            )


def _image_pinned(job: Resource, _: Config) -> Iterator[str]:
    for image in _images(job):
        reference = str(image.value or "")
        if _DIGEST.search(reference) or _VERSION_TAG.search(reference.rpartition("/")[2]):
            continue
        yield (
            f"{image.path} = {describe(image.value)}: not pinned; a floating tag can change what "
            "the export runs without any change here; use a version tag (e.g. :576.0.0-stable) "
            "or a digest (@sha256:...)"
        )


def _export_databases(job: Resource, config: Config) -> Iterator[str]:
    envs = {
        str(env.at("name").value): env.at("value")
        for container in job.props.at(f"{_TASK}.containers").elements()
        for env in container.at("envs").elements()
    }
    if "EXPORT_INSTANCE" not in envs:
        return  # not an export job
    listed = envs.get("EXPORT_DATABASES", Node(None, "EXPORT_DATABASES"))
    databases = {name.strip() for name in str(listed.value or "").split(",") if name.strip()}
    missing = [name for name in config["requiredDatabases"] if name not in databases]
    if missing:
        yield (
            f"EXPORT_DATABASES = {describe(listed.value)}: does not export {', '.join(missing)}, "
            "which hold the data (requiredDatabases); the job would report success without them"
        )


# The program's weekly restore verification job (RestoreVerificationArgs.job_name_for): its trigger
# is weekly by design, and cloudsql-instance-weekly-restore-verification judges its cadence.
_VERIFICATION_RUN = re.compile(r"/jobs/sql-verify-[^/:]+:run$")


def _not_the_verification_trigger(scheduler: Resource) -> str | None:
    if _VERIFICATION_RUN.search(str(scheduler.props.at("httpTarget.uri").value or "")):
        return (
            "starts the weekly restore verification (cloudsql-instance-weekly-restore-verification)"
        )
    return None


def _export_jobs_only(job: Resource) -> str | None:
    for container in job.props.at(f"{_TASK}.containers").elements():
        if any(
            env.at("name").value == "EXPORT_INSTANCE" for env in container.at("envs").elements()
        ):
            return None
    return "not an export job (no EXPORT_INSTANCE variable)"


def policies() -> list[ResourceValidationPolicy]:
    """The export rules, in the order the policy reference lists them."""
    return [
        resource_policy(
            name="cloudscheduler-job-not-paused",
            description="Cloud Scheduler jobs of the stack (they start the exports) are not paused.",
            resource_types=_SCHEDULER_TYPES,
            checks=[_not_paused],
            severity=Severity.CRITICAL,
            remediation="Set paused=False (or leave it unset).",
        ),
        resource_policy(
            name="cloudscheduler-job-frequency",
            description=(
                "Cloud Scheduler jobs of the stack fire at least every maximumIntervalHours, judged "
                "over a year of their cron schedule in their own time zone (the hour a DST change "
                "adds does not count)."
            ),
            resource_types=_SCHEDULER_TYPES,
            scope=_not_the_verification_trigger,
            checks=[_fires_often_enough],
            settings=[
                Setting(
                    "maximumIntervalHours",
                    "number",
                    24,
                    "Longest time allowed between two runs (hours).",
                    # At least an hour: the year is probed at this spacing (see schedules.py).
                    {"minimum": 1, "maximum": 8784},
                ),
            ],
            remediation="Use a schedule that runs at least daily, e.g. '30 3 * * *'.",
        ),
        resource_policy(
            name="cloudrun-job-timeout",
            description=(
                "Cloud Run jobs set their task timeout explicitly (the 10-minute default is too "
                "short for an export) and keep it within maximumTimeoutHours."
            ),
            resource_types=_RUN_JOB_TYPES,
            checks=[_timeout],
            settings=[
                Setting(
                    "maximumTimeoutHours",
                    "number",
                    24,
                    "Longest task timeout allowed (hours); Cloud Run allows up to 168.",
                    {"exclusiveMinimum": 0, "maximum": 168},
                ),
            ],
            remediation="Set template.template.timeout, e.g. '21600s' for 6 hours.",
        ),
        resource_policy(
            name="cloudrun-job-bounded-retries",
            description=(
                "Cloud Run jobs retry a failed task at most maximumRetries times (Cloud Run retries "
                "3 times when maxRetries is not set)."
            ),
            resource_types=_RUN_JOB_TYPES,
            checks=[_bounded_retries],
            settings=[
                Setting(
                    "maximumRetries",
                    "integer",
                    3,
                    "Most retries allowed per task.",
                    {"minimum": 0, "maximum": 10},
                ),
            ],
            remediation="Set template.template.max_retries to the maximum or fewer.",
        ),
        resource_policy(
            name="cloudrun-job-no-plaintext-secrets",
            description=(
                "No environment variable of a Cloud Run job holds a secret in plain text: a "
                "secret-named variable (PASSWORD, SECRET, TOKEN, ...KEY, CREDENTIALS) and any value "
                "that looks like key material (PEM key, service account key, URL with a password, "
                "known token format, long high-entropy token) must come from Secret Manager "
                "(valueSource.secretKeyRef)."
            ),
            resource_types=_RUN_JOB_TYPES,
            checks=[_no_plaintext_secrets],
            severity=Severity.CRITICAL,
            remediation=(
                "Store the secret in Secret Manager and set the variable with "
                "value_source.secret_key_ref (secret, version)."
            ),
        ),
        resource_policy(
            name="cloudrun-job-image-allowed-registry",
            description=(
                "Every container image of a Cloud Run job comes from an allowed registry "
                "(allowedRegistries: Google's Cloud SDK images by default)."
            ),
            resource_types=_RUN_JOB_TYPES,
            checks=[_image_registry],
            settings=[
                Setting(
                    "allowedRegistries",
                    "array",
                    list(TRUSTED_REGISTRIES),
                    "Image name prefixes (registry and repository path) a job may run.",
                    {
                        "items": {"type": "string", "minLength": 1},
                        "minItems": 1,
                        "uniqueItems": True,
                    },
                ),
            ],
            severity=Severity.CRITICAL,
            remediation="Use an image from an allowed registry, e.g. Google's Cloud SDK image.",
        ),
        resource_policy(
            name="cloudrun-job-image-pinned",
            description=(
                "Every container image of a Cloud Run job is pinned: a version tag "
                "(e.g. 576.0.0-stable) or a digest, never a floating tag such as stable or latest."
            ),
            resource_types=_RUN_JOB_TYPES,
            checks=[_image_pinned],
            remediation="Pin the image to a version tag or a digest.",
        ),
        resource_policy(
            name="cloudrun-job-export-databases",
            description=(
                "The export job exports every database that holds the data (requiredDatabases "
                "must all be in its EXPORT_DATABASES list)."
            ),
            resource_types=_RUN_JOB_TYPES,
            scope=_export_jobs_only,
            checks=[_export_databases],
            settings=[
                Setting(
                    "requiredDatabases",
                    "array",
                    ["scheduling"],
                    "Databases every export must include.",
                    {
                        "items": {"type": "string", "minLength": 1},
                        "minItems": 1,
                        "uniqueItems": True,
                    },
                ),
            ],
            severity=Severity.CRITICAL,
            remediation="Add the database to the stack's export_databases.",
        ),
    ]
