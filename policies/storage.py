"""Backup bucket rules: every ``gcp:storage/bucket:Bucket`` labelled ``purpose: sql-backups`` is
versioned, keeps exports long enough but not forever (noncurrent versions included), is private,
and cannot be emptied by a soft-delete-less or forced destroy.

Lifecycle semantics follow Cloud Storage and pulumi-gcp 10: conditions of a rule are ANDed; a rule
with no ``age`` still sends ``age: 0`` unless ``sendAgeIfZero`` is false; ``daysSinceNoncurrentTime``,
``numNewerVersions`` and ``noncurrentTimeBefore`` only ever match noncurrent versions; ``withState``
not set means ANY.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from policy_kit import Check, Config, Resource, Setting, required_true, resource_policy, string_list
from property_access import Node, ValueUnknown, describe, numeric
from pulumi_policy import ResourceValidationPolicy, Severity

BUCKET = "gcp:storage/bucket:Bucket"
_BUCKET_TYPES = frozenset({BUCKET})
BACKUP_LABEL_KEY = "purpose"
BACKUP_LABEL_VALUE = "sql-backups"
# The backup bucket's promise: every export is kept 30 days.
PROMISED_RETENTION_DAYS = 30
BUCKET_GEOGRAPHY = ["EU", "europe-west1"]

# Conditions that restrict a rule to some objects only: such a rule bounds nothing for the others.
_NARROWING = (
    "createdBefore",
    "customTimeBefore",
    "daysSinceCustomTime",
    "matchesPrefixes",
    "matchesSuffixes",
    "matchesStorageClasses",
    "noncurrentTimeBefore",
    "sizeAboveBytes",
    "sizeBelowBytes",
)
# Conditions only noncurrent versions can satisfy, with the flag that sends a zero value.
_NONCURRENT_BOUNDS = {
    "daysSinceNoncurrentTime": "sendDaysSinceNoncurrentTimeIfZero",
    "numNewerVersions": "sendNumNewerVersionsIfZero",
}


def is_backup_bucket(bucket: Resource) -> bool:
    """Whether the bucket is labelled as holding SQL backups; raises ValueUnknown if that is unknown."""
    return bool(bucket.props.at(f"labels.{BACKUP_LABEL_KEY}").value == BACKUP_LABEL_VALUE)


def _backup_buckets_only(bucket: Resource) -> str | None:
    if is_backup_bucket(bucket):
        return None
    return f"not a backup bucket (no label {BACKUP_LABEL_KEY}={BACKUP_LABEL_VALUE})"


@dataclass(frozen=True)
class LifecycleRule:
    """One lifecycle rule, reduced to what decides how long backups live."""

    path: str
    deletes: bool
    live: bool  # can match live objects
    noncurrent: bool  # can match noncurrent versions
    age: float | None  # effective age condition in days; None = no age condition at all
    bounds_noncurrent: bool  # has daysSinceNoncurrentTime or numNewerVersions
    narrowed_by: tuple[str, ...]
    days_noncurrent: float | None = None  # daysSinceNoncurrentTime when sent


def _present(condition: Node, key: str, send_zero_flag: str | None) -> bool:
    """Whether a numeric condition is sent: a zero is sent only with its send-if-zero flag."""
    value = numeric(condition.at(key).value)
    if value is None:
        return False
    return value != 0 or (send_zero_flag is not None and condition.at(send_zero_flag).value is True)


def _effective_age(condition: Node) -> float | None:
    age = numeric(condition.at("age").value)
    if age:
        return age
    # pulumi-gcp sends age 0 unless sendAgeIfZero is explicitly false.
    return None if condition.at("sendAgeIfZero").value is False else 0.0


def _narrowing(condition: Node) -> tuple[str, ...]:
    found = []
    for key in _NARROWING:
        value = condition.at(key).value
        if key == "daysSinceCustomTime":
            if _present(condition, key, "sendDaysSinceCustomTimeIfZero"):
                found.append(key)
        elif value not in (None, "", []):
            found.append(key)
    return tuple(found)


def parse_rule(rule: Node) -> LifecycleRule:
    """Raises ValueUnknown when a part that decides what the rule deletes is unknown."""
    condition = rule.at("condition")
    state = condition.at("withState").value or "ANY"
    bounds_noncurrent = any(
        _present(condition, key, flag) for key, flag in _NONCURRENT_BOUNDS.items()
    )
    noncurrent_only = bounds_noncurrent or condition.at("noncurrentTimeBefore").value not in (
        None,
        "",
    )
    return LifecycleRule(
        path=rule.path,
        deletes=rule.at("action.type").value == "Delete",
        live=state in ("ANY", "LIVE") and not noncurrent_only,
        noncurrent=state in ("ANY", "ARCHIVED"),
        age=_effective_age(condition),
        bounds_noncurrent=bounds_noncurrent,
        narrowed_by=_narrowing(condition),
        days_noncurrent=(
            numeric(condition.at("daysSinceNoncurrentTime").value)
            if _present(condition, "daysSinceNoncurrentTime", "sendDaysSinceNoncurrentTimeIfZero")
            else None
        ),
    )


def _rules(bucket: Resource) -> tuple[list[LifecycleRule], list[str]]:
    """The bucket's parsed rules, and the paths of rules that could not be read (unknown)."""
    parsed, unknown = [], []
    for node in bucket.props.at("lifecycleRules").elements():
        try:
            parsed.append(parse_rule(node))
        except ValueUnknown as missing:
            unknown.append(missing.path)
    return parsed, unknown


_versioning = required_true(
    "versioning.enabled", "an overwritten or deleted export is gone for good"
)


def _retention_bounded(bucket: Resource, config: Config) -> Iterator[str]:
    maximum = config["maximumAgeDays"]
    rules, unknown = _rules(bucket)
    if any(_bounds_live_objects(rule, maximum) for rule in rules):
        return
    if unknown:
        raise ValueUnknown(unknown[0])
    yield (
        f"lifecycleRules: no Delete rule removes every export by age <= {maximum} days "
        "(maximumAgeDays; withState ANY or LIVE, no prefix/suffix/class/size/date filter): "
        "exports pile up forever"
    )


def _bounds_live_objects(rule: LifecycleRule, maximum: float) -> bool:
    return (
        rule.deletes
        and rule.live
        and not rule.narrowed_by
        and rule.age is not None
        and rule.age <= maximum
    )


def _every_rule(bucket: Resource) -> list[LifecycleRule]:
    """Every lifecycle rule of the bucket; raises ValueUnknown if one cannot be read, since an
    unreadable rule could delete exports (live or noncurrent) at any age."""
    rules, unknown = _rules(bucket)
    if unknown:
        raise ValueUnknown(unknown[0])
    return rules


def _no_early_delete(bucket: Resource, config: Config) -> Iterator[str]:
    minimum = config["minimumAgeDays"]
    for rule in _every_rule(bucket):
        if not (rule.deletes and rule.live):
            continue
        if rule.age is None:
            yield (
                f"{rule.path}: deletes live exports with no age condition, i.e. at any age; "
                f"add condition.age >= {minimum} (minimumAgeDays)"
            )
        elif rule.age < minimum:
            yield (
                f"{rule.path}.condition.age = {describe(rule.age)}: deletes live exports younger "
                f"than {minimum} days (minimumAgeDays); raise it to at least {minimum}"
            )


def _noncurrent_cleanup(bucket: Resource, _: Config) -> Iterator[str]:
    rules, unknown = _rules(bucket)
    if any(_cleans_noncurrent(rule) for rule in rules):
        return
    if unknown:
        raise ValueUnknown(unknown[0])
    yield (
        "lifecycleRules: no Delete rule removes noncurrent versions (daysSinceNoncurrentTime or "
        "numNewerVersions, or an age rule with withState ANY or ARCHIVED, without filters): with "
        "versioning on, every overwritten or expired export is kept, and billed, forever"
    )


def _cleans_noncurrent(rule: LifecycleRule) -> bool:
    return (
        rule.deletes
        and rule.noncurrent
        and not rule.narrowed_by
        and (rule.bounds_noncurrent or rule.age is not None)
    )


def _noncurrent_minimum_age(bucket: Resource, config: Config) -> Iterator[str]:
    minimum = config["minimumDays"]
    for rule in _every_rule(bucket):
        if not (rule.deletes and rule.noncurrent):
            continue
        # Conditions are ANDed: either bound keeps the version at least that long.
        kept = max(rule.age or 0.0, rule.days_noncurrent or 0.0)
        if kept < minimum:
            yield (
                f"{rule.path}: deletes an overwritten or deleted export after "
                f"{_kept_description(rule)}, before it is {minimum} days old or {minimum} days "
                f"noncurrent (minimumDays); raise daysSinceNoncurrentTime (or age) to {minimum}"
            )


def _kept_description(rule: LifecycleRule) -> str:
    if rule.days_noncurrent is not None:
        return f"{rule.days_noncurrent:g} day(s) as a noncurrent version"
    if rule.age:
        return f"an age of {rule.age:g} day(s)"
    return "no time at all (only numNewerVersions or a date bounds it)"


def _location(bucket: Resource, config: Config) -> Iterator[str]:
    location = bucket.props.at("location")
    allowed = [str(entry).upper() for entry in config["allowedLocations"]]
    # Cloud Storage location names are case-insensitive; Google reports them in upper case.
    if str(location.value or "").upper() not in allowed:
        yield (
            f"location = {describe(location.value)}: exports would be stored outside the allowed "
            f"geography ({', '.join(allowed)}, allowedLocations)"
        )


_uniform_access = required_true(
    "uniformBucketLevelAccess", "object ACLs could grant access that bucket IAM does not show"
)


def _public_access_prevention(bucket: Resource, _: Config) -> Iterator[str]:
    prevention = bucket.props.at("publicAccessPrevention")
    if prevention.value != "enforced":
        yield (
            f"publicAccessPrevention = {describe(prevention.value)}: nothing stops a grant to "
            "allUsers from publishing the database dumps; set it to 'enforced'"
        )


def _soft_delete(bucket: Resource, _: Config) -> Iterator[str]:
    duration = bucket.props.at("softDeletePolicy.retentionDurationSeconds")
    # Not set means Google's default window of 7 days.
    if duration.value is not None and numeric(duration.value) == 0:
        yield (
            f"{duration.path} = 0: soft delete is disabled, so a deleted export cannot be "
            "restored; remove the override or set 604800..7776000 seconds (7-90 days)"
        )


def _force_destroy(bucket: Resource, _: Config) -> Iterator[str]:
    force = bucket.props.at("forceDestroy")
    if force.value is True:
        yield (
            "forceDestroy = true: destroying the stack would delete every export in the bucket; "
            "set it to false"
        )


def _backup_bucket_policy(
    name: str,
    description: str,
    check: Check,
    remediation: str,
    settings: list[Setting] | None = None,
    severity: Severity = Severity.HIGH,
) -> ResourceValidationPolicy:
    return resource_policy(
        name=name,
        description=description,
        resource_types=_BUCKET_TYPES,
        scope=_backup_buckets_only,
        checks=[check],
        settings=settings or [],
        severity=severity,
        remediation=remediation,
    )


def policies() -> list[ResourceValidationPolicy]:
    """The backup bucket rules, in the order the policy reference lists them."""
    backup = f"Backup buckets (label {BACKUP_LABEL_KEY}={BACKUP_LABEL_VALUE})"
    return [
        _backup_bucket_policy(
            "storage-bucket-versioning",
            f"{backup} keep object versioning on, so an overwritten or deleted export can be recovered.",
            _versioning,
            "Set versioning=BucketVersioningArgs(enabled=True).",
            severity=Severity.CRITICAL,
        ),
        _backup_bucket_policy(
            "storage-bucket-retention-bounded",
            (
                f"{backup} delete every export after at most the maximum age: a Delete lifecycle "
                "rule on live objects (withState ANY or LIVE) with condition.age <= maximumAgeDays "
                "and no filter that would leave some objects out."
            ),
            _retention_bounded,
            "Add a lifecycle rule: action Delete, condition age=<days>, with_state='ANY'.",
            settings=[
                Setting(
                    "maximumAgeDays",
                    "integer",
                    30,
                    "Oldest an export may get before a lifecycle rule deletes it (days).",
                    {"minimum": 1, "maximum": 3650},
                ),
            ],
        ),
        _backup_bucket_policy(
            "storage-bucket-no-early-delete",
            (
                f"No lifecycle rule of {backup.lower()} deletes a live export before it is "
                "minimumAgeDays old, so a mistaken rule cannot silently drop recent backups."
            ),
            _no_early_delete,
            "Raise condition.age of every Delete rule that matches live objects to the minimum.",
            settings=[
                Setting(
                    "minimumAgeDays",
                    "integer",
                    PROMISED_RETENTION_DAYS,
                    "Youngest a live export may be when a lifecycle rule deletes it (days): the "
                    "bucket's promise, every export kept 30 days.",
                    {"minimum": 1, "maximum": 3650},
                ),
            ],
            severity=Severity.CRITICAL,
        ),
        _backup_bucket_policy(
            "storage-bucket-noncurrent-cleanup",
            (
                f"{backup} delete noncurrent versions (daysSinceNoncurrentTime or numNewerVersions, "
                "or an age rule with withState ANY or ARCHIVED): with versioning on, they are "
                "otherwise kept forever."
            ),
            _noncurrent_cleanup,
            "Add a lifecycle rule: action Delete, condition days_since_noncurrent_time=<days>.",
            severity=Severity.MEDIUM,
        ),
        _backup_bucket_policy(
            "storage-bucket-noncurrent-minimum-age",
            (
                f"No lifecycle rule of {backup.lower()} deletes a noncurrent (overwritten or "
                "deleted) export before it is minimumDays old or minimumDays noncurrent: a 1-day "
                "noncurrent rule would make a deleted export unrecoverable almost at once."
            ),
            _noncurrent_minimum_age,
            "Set condition.days_since_noncurrent_time of every Delete rule for noncurrent "
            "versions to at least the minimum.",
            settings=[
                Setting(
                    "minimumDays",
                    "integer",
                    PROMISED_RETENTION_DAYS,
                    "Fewest days a noncurrent version of an export is kept (by age or time since "
                    "it became noncurrent).",
                    {"minimum": 1, "maximum": 3650},
                ),
            ],
            severity=Severity.CRITICAL,
        ),
        _backup_bucket_policy(
            "storage-bucket-location",
            f"{backup} are in an allowed location, so exports stay inside the configured geography.",
            _location,
            "Create the backup bucket in an allowed location (a bucket cannot move).",
            settings=[
                string_list(
                    "allowedLocations",
                    list(BUCKET_GEOGRAPHY),
                    "Cloud Storage locations (any case) a backup bucket may be in.",
                    at_least_one=True,
                ),
            ],
        ),
        _backup_bucket_policy(
            "storage-bucket-uniform-access",
            f"{backup} use uniform bucket-level access: IAM alone decides who can read exports.",
            _uniform_access,
            "Set uniform_bucket_level_access=True.",
        ),
        _backup_bucket_policy(
            "storage-bucket-public-access-prevention",
            f"{backup} enforce public access prevention, so no grant can make exports public.",
            _public_access_prevention,
            "Set public_access_prevention='enforced'.",
            severity=Severity.CRITICAL,
        ),
        _backup_bucket_policy(
            "storage-bucket-soft-delete",
            f"{backup} keep soft delete on (retentionDurationSeconds not 0): deleted exports stay restorable.",
            _soft_delete,
            "Remove soft_delete_policy, or set retention_duration_seconds between 7 and 90 days.",
        ),
        _backup_bucket_policy(
            "storage-bucket-force-destroy",
            f"{backup} are not force-destroyable: deleting the bucket never deletes the exports in it.",
            _force_destroy,
            "Set force_destroy=False.",
            severity=Severity.CRITICAL,
        ),
    ]
