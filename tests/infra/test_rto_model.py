"""Issue 17: the export format and thread settings, and the RTO the model in README "Performance"
predicts from the stack's disk size and tier, warned about at preview when it misses the target."""

from __future__ import annotations

from typing import Any

import pytest

from infra.cloudsql_backups import rto_model
from tests.infra.test_config import config_error
from tools.stack_render import REPO_ROOT, render

NS = "cloudsql-backups"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"export_threads": "2"},
            f"{NS}:export_threads = 2 needs export_format = parallel (export_format is 'sql.gz'): "
            "allowed: 0 with sql.gz, or set export_format = parallel",
        ),
        (
            {"export_format": "parallel", "export_threads": "3"},
            f"{NS}:export_threads = 3 is more than the 2 vCPU(s) of tier 'db-custom-2-7680': "
            "allowed: 0 (Cloud SQL's default) or 1 to 2",
        ),
        (
            {"export_format": "directory"},
            f"{NS}:export_format = 'directory': allowed:",
        ),
        ({"export_threads": "-1"}, f"{NS}:export_threads = '-1': allowed: an integer from 0"),
        (
            {"target_rto_minutes": "5"},
            f"{NS}:target_rto_minutes = '5': allowed: an integer from 15",
        ),
    ],
)
def test_export_format_settings_that_cannot_work_are_refused(
    overrides: dict[str, Any], expected: str
) -> None:
    assert expected in config_error("staging", **overrides)


def test_a_parallel_export_with_threads_up_to_the_vcpus_is_accepted() -> None:
    stack = render("staging", overrides={"export_format": "parallel", "export_threads": "2"})
    assert stack.resources


def test_the_stacks_as_configured_meet_their_target_rto_without_warning() -> None:
    for name in ("prod", "staging"):
        assert not [w for w in render(name).warnings if "target_rto_minutes" in w]


def test_a_large_disk_with_sql_gz_warns_and_names_the_faster_format() -> None:
    stack = render("prod", overrides={"disk_size_gb": "2000", "target_rto_minutes": "300"})

    (warning,) = [w for w in stack.warnings if "target_rto_minutes" in w]
    expected = rto_model.estimate(1700, 4)
    assert f"{NS}:target_rto_minutes = 300" in warning
    assert "restoring a 1700 GB (85 % of disk_size_gb = 2000) database from its sql.gz" in warning
    assert f"{expected.minutes['sql.gz']:.0f} min on 4 vCPU(s)" in warning
    assert (
        f"use {NS}:export_format = parallel (expected {expected.minutes['parallel']:.0f} min)"
        in warning
    )


def test_when_even_parallel_misses_the_target_the_warning_says_what_else_helps() -> None:
    stack = render(
        "prod",
        overrides={"disk_size_gb": "4000", "target_rto_minutes": "60", "export_format": "parallel"},
    )

    (warning,) = [w for w in stack.warnings if "target_rto_minutes" in w]
    assert "from its parallel export" in warning
    assert "a larger tier" in warning


def test_an_export_expected_to_outlast_its_task_timeout_warns() -> None:
    stack = render("prod", overrides={"disk_size_gb": "2000", "target_rto_minutes": "10080"})

    (warning,) = [w for w in stack.warnings if "export_timeout_hours" in w]
    assert "exporting a 1700 GB database as sql.gz" in warning
    assert "export_format = parallel is expected to take" in warning


def test_the_model_restores_a_directory_dump_faster_with_more_vcpus_never_slower() -> None:
    for size in rto_model.TABLE_SIZES_GB:
        times = [rto_model.restore_minutes("parallel", size, v) for v in (1, 2, 8, 32)]
        assert times == sorted(times, reverse=True)
        one_job = rto_model.FIXED_RESTORE_MINUTES + size * rto_model.PG_RESTORE_MINUTES_PER_GB
        assert times[0] == pytest.approx(one_job), "one job is one pg_restore stream"
        assert times[0] <= rto_model.restore_minutes("sql.gz", size, 1)


@pytest.mark.parametrize(
    ("tier", "vcpus"),
    [
        ("db-custom-4-16384", 4),
        ("db-perf-optimized-N-32", 32),
        ("db-f1-micro", 1),
        ("db-g1-small", 1),
    ],
)
def test_vcpus_come_from_the_tier(tier: str, vcpus: int) -> None:
    assert rto_model.tier_vcpus(tier) == vcpus


def test_the_readme_performance_section_holds_the_models_table() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    performance = readme[readme.index("## Performance") :]
    assert rto_model.markdown_table() in performance
