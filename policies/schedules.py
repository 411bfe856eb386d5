"""How often a Cloud Scheduler cron expression really fires, in its own time zone.

The question a backup rule asks is "is there ever a gap longer than N hours between two runs?".
Enumerating every run of a year is too slow for dense schedules (every 5 minutes on the 1st of the
month fires ~100,000 times a year yet leaves 30-day gaps), so the year is probed instead: at probe
times ``spacing`` apart, the gap that contains the probe is ``(previous run, next run)``. Any gap
longer than ``spacing`` contains a probe, so probing with ``spacing = N hours`` finds every gap
longer than N hours, exactly. Probes sit 30 seconds past the minute, never on a run (cron fires on
whole minutes), so a probe never straddles two gaps. The year covers both DST changes of the zone.

"Daily" means daily in the schedule's own zone: a gap counts as too long only if it is too long both
in elapsed time and on the local clock, so the hour a DST change adds (a 02:30 daily run is 25 h
apart once a year in Europe/London) does not make a daily schedule fail a 24-hour bar.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from croniter import CroniterBadDateError, croniter

# Cloud Scheduler takes unix-cron: minute, hour, day of month, month, day of week.
CRON_FIELDS = 5
_YEAR = timedelta(days=366)
_PROBE_OFFSET = timedelta(seconds=30)


class InvalidScheduleError(ValueError):
    """Not a schedule Cloud Scheduler would accept."""


@dataclass(frozen=True)
class Gap:
    """Two consecutive runs, as local times of the schedule's zone."""

    after: datetime
    before: datetime

    @property
    def elapsed(self) -> timedelta:
        return self.before.astimezone(UTC) - self.after.astimezone(UTC)

    @property
    def on_the_clock(self) -> timedelta:
        """The difference of the local wall-clock times, ignoring DST offset changes."""
        return self.before.replace(tzinfo=None) - self.after.replace(tzinfo=None)

    @property
    def hours(self) -> float:
        return self.elapsed.total_seconds() / 3600


def parse(schedule: str, time_zone: str) -> tuple[str, zoneinfo.ZoneInfo]:
    """The schedule and zone, or InvalidScheduleError saying what is wrong."""
    if len(schedule.split()) != CRON_FIELDS:
        raise InvalidScheduleError(f"{schedule!r} is not a 5-field unix-cron expression")
    if not croniter.is_valid(schedule):
        raise InvalidScheduleError(f"{schedule!r} is not a valid cron expression")
    try:
        zone = zoneinfo.ZoneInfo(time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidScheduleError(f"{time_zone!r} is not an IANA time zone") from None
    return schedule, zone


@lru_cache(maxsize=512)
def gap_longer_than(schedule: str, time_zone: str, hours: float) -> Gap | None:
    """A gap between consecutive runs longer than ``hours`` within a year, or None if there is none.

    Raises InvalidScheduleError. Cached: the answer depends on its arguments only.
    """
    cron, zone = parse(schedule, time_zone)
    spacing = timedelta(hours=hours)
    # Probe in UTC: elapsed time is what matters, and wall-clock arithmetic is off by an hour at
    # each DST change.
    start = datetime(2026, 1, 1, tzinfo=UTC) + _PROBE_OFFSET
    probes = int(_YEAR / spacing) + 1
    for index in range(probes):
        gap = Gap(*_runs_around(cron, (start + index * spacing).astimezone(zone)))
        if gap.elapsed > spacing and gap.on_the_clock > spacing:
            return gap
    return None


def _runs_around(cron: str, moment: datetime) -> tuple[datetime, datetime]:
    try:
        runs: Any = croniter(cron, moment)
        following: datetime = runs.get_next(datetime)
        # No run lies between ``moment`` and ``following``: the run before it precedes ``moment``.
        preceding: datetime = runs.get_prev(datetime)
    except CroniterBadDateError:
        # croniter gives up when no date within its search limit matches (e.g. 31 February).
        raise InvalidScheduleError(f"{cron!r} never fires") from None
    return preceding, following
