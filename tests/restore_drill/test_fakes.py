"""The fake Cloud SQL Admin API keeps the real API's rules, and the operation helpers honour them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ops.restore_drill.cloudsql import (
    CloudApiError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    Operation,
    OperationFailedError,
    OperationTimeoutError,
    ParallelImport,
    PollSettings,
    StoredObject,
    retry_while_busy,
    wait_for_operation,
)
from ops.restore_drill.fakes import FakeBackupStore, FakeCloudSqlAdmin, FakeInstance

MOMENT = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


def instant_polling() -> PollSettings:
    return PollSettings(
        interval_seconds=1, timeout_seconds=60, conflict_retries=2, sleep=lambda _s: None
    )


def test_an_operation_goes_pending_running_done_as_it_is_polled() -> None:
    admin = FakeCloudSqlAdmin([FakeInstance("staging-pg")])

    started = admin.create_database("staging-pg", "drill")

    assert started.status == "PENDING"
    assert admin.get_operation(started.name).status == "RUNNING"
    done = admin.get_operation(started.name)
    assert (done.status, done.failed) == ("DONE", False)
    assert "drill" in admin.instances["staging-pg"].databases


def test_one_operation_at_a_time_per_instance() -> None:
    admin = FakeCloudSqlAdmin([FakeInstance("staging-pg"), FakeInstance("other")])
    admin.create_database("staging-pg", "drill")

    with pytest.raises(ConflictError) as busy:
        admin.import_sql("staging-pg", "gs://b/x.sql.gz", "drill", None)
    assert (busy.value.status, busy.value.reason) == (409, "operationInProgress")
    admin.create_database("other", "drill")  # other instances are not blocked


def test_unknown_instances_and_operations_are_404() -> None:
    admin = FakeCloudSqlAdmin([])

    with pytest.raises(NotFoundError, match="instanceDoesNotExist"):
        admin.get_instance("nope")
    with pytest.raises(NotFoundError, match="instanceDoesNotExist"):
        admin.clone_instance("nope", "copy", MOMENT)
    with pytest.raises(NotFoundError):
        admin.get_operation("00000000-0000-4000-8000-000000000099")


def test_a_failed_operation_is_done_with_errors() -> None:
    admin = FakeCloudSqlAdmin([FakeInstance("staging-pg", databases={"drill"})])
    admin.fail_next("IMPORT", "ERROR_RDBMS", "exit status 3")

    operation = admin.import_sql("staging-pg", "gs://b/x.sql.gz", "drill", None)

    with pytest.raises(
        OperationFailedError, match=r"IMPORT operation .* failed: ERROR_RDBMS: exit status 3"
    ):
        wait_for_operation(admin, operation, instant_polling())


def test_importing_into_a_database_that_does_not_exist_fails_the_operation() -> None:
    admin = FakeCloudSqlAdmin([FakeInstance("staging-pg")])

    operation = admin.import_sql("staging-pg", "gs://b/x.sql.gz", "missing", None)

    with pytest.raises(OperationFailedError, match='database "missing" does not exist'):
        wait_for_operation(admin, operation, instant_polling())


@pytest.mark.parametrize(
    ("uri", "parallel", "error"),
    [
        ("gs://b/x.sql.gz", ParallelImport(2), "is a file; a parallel import reads a directory"),
        ("gs://b/d/20260301T020000Z", None, "object not found"),
    ],
)
def test_an_import_of_the_wrong_shape_fails_the_operation(
    uri: str, parallel: ParallelImport | None, error: str
) -> None:
    admin = FakeCloudSqlAdmin([FakeInstance("staging-pg", databases={"drill"})])

    operation = admin.import_sql("staging-pg", uri, "drill", None, parallel)

    with pytest.raises(OperationFailedError, match=error):
        wait_for_operation(admin, operation, instant_polling())


def test_a_parallel_import_needs_at_least_one_thread() -> None:
    admin = FakeCloudSqlAdmin([FakeInstance("staging-pg", databases={"drill"})])

    with pytest.raises(CloudApiError, match="threads: 0") as refused:
        admin.import_sql(
            "staging-pg", "gs://b/d/20260301T020000Z", "drill", None, ParallelImport(0)
        )
    assert refused.value.status == 400


@pytest.mark.parametrize(
    ("tier", "vcpus"),
    [
        ("db-custom-4-16384", 4),
        ("db-perf-optimized-N-8", 8),
        ("db-f1-micro", 1),
        ("db-n1-standard-2", None),
    ],
)
def test_the_vcpus_of_a_tier(tier: str, vcpus: int | None) -> None:
    assert FakeInstance("staging-pg", tier=tier).view().vcpus == vcpus


def test_a_clone_inherits_deletion_protection_which_blocks_deleting_it() -> None:
    admin = FakeCloudSqlAdmin([FakeInstance("prod-pg", deletion_protection=True)])
    wait_for_operation(admin, admin.clone_instance("prod-pg", "copy", MOMENT), instant_polling())

    assert admin.get_instance("copy").deletion_protection
    with pytest.raises(CloudApiError, match="protected"):
        admin.delete_instance("copy")
    wait_for_operation(admin, admin.prepare_for_deletion("copy"), instant_polling())
    wait_for_operation(admin, admin.delete_instance("copy"), instant_polling())
    assert set(admin.instances) == {"prod-pg"}


def test_a_clone_inherits_backup_keeping_and_leaves_backups_unless_switched_off() -> None:
    source = FakeInstance("prod-pg", retain_backups_on_delete=True, final_backup_enabled=True)
    admin = FakeCloudSqlAdmin([source])
    for clone in ("kept", "cleaned"):
        wait_for_operation(admin, admin.clone_instance("prod-pg", clone, MOMENT), instant_polling())
    copy = admin.get_instance("kept")
    assert (copy.retain_backups_on_delete, copy.final_backup_enabled) == (True, True)

    wait_for_operation(admin, admin.delete_instance("kept"), instant_polling())
    wait_for_operation(admin, admin.prepare_for_deletion("cleaned"), instant_polling())
    wait_for_operation(admin, admin.delete_instance("cleaned"), instant_polling())

    assert admin.backups_left_behind == [("kept", "automated"), ("kept", "final")]


def test_a_missing_instance_can_answer_403_like_cloud_sql() -> None:
    admin = FakeCloudSqlAdmin([], missing_instance_status=403)
    with pytest.raises(ForbiddenError, match="notAuthorized"):
        admin.get_instance("nowhere")


def test_cloning_onto_an_existing_name_is_a_conflict_that_is_not_retried() -> None:
    admin = FakeCloudSqlAdmin([FakeInstance("prod-pg"), FakeInstance("copy")])
    attempts: list[int] = []

    def start() -> Operation:
        attempts.append(1)
        return admin.clone_instance("prod-pg", "copy", MOMENT)

    with pytest.raises(ConflictError, match="instanceAlreadyExists"):
        retry_while_busy(start, instant_polling())
    assert len(attempts) == 1


def test_a_busy_instance_is_retried_until_the_retries_run_out() -> None:
    admin = FakeCloudSqlAdmin([FakeInstance("staging-pg")])
    admin.start_blocking_operation("staging-pg")

    with pytest.raises(ConflictError, match="operationInProgress"):
        retry_while_busy(lambda: admin.create_database("staging-pg", "drill"), instant_polling())
    assert len([c for c in admin.calls if c[0] == "create_database"]) == 3


def test_waiting_gives_up_at_the_timeout_and_names_the_operation() -> None:
    admin = FakeCloudSqlAdmin([FakeInstance("staging-pg")], polls_per_phase=1000)
    operation = admin.create_database("staging-pg", "drill")
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    poll = PollSettings(
        interval_seconds=30, timeout_seconds=90, sleep=sleep, monotonic=lambda: clock[0]
    )

    with pytest.raises(
        OperationTimeoutError, match=f"gcloud sql operations describe {operation.name}"
    ):
        wait_for_operation(admin, operation, poll)
    assert clock[0] == 120


def test_bucket_listing_is_by_prefix_in_name_order_and_unknown_buckets_are_404() -> None:
    store = FakeBackupStore([StoredObject("b", name, 1, MOMENT) for name in ("a/2", "a/1", "b/1")])

    assert [o.name for o in store.list_objects("b", "a/")] == ["a/1", "a/2"]
    with pytest.raises(NotFoundError):
        store.list_objects("missing", "")
