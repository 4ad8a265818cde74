"""Business calendars: working hours per weekday, holidays and make-up workdays (调休).

The clock engine counts every SLA target in working time on a company's calendar::

    cal = BusinessCalendar()                     # Mon–Fri 09:00–18:00, Asia/Shanghai
    cal.add(friday_17h, timedelta(hours=4))      # -> Monday 12:00 (as aware UTC)
    cal.working_time_between(start, end)         # working time elapsed between two moments

Computation walks whole days, not minutes, so a target of weeks costs a few dozen steps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Interval = tuple[time, time]
NINE_TO_SIX: tuple[Interval, ...] = ((time(9), time(18)),)
END_OF_DAY = time.max  # how "24:00" is kept: the interval runs to the next midnight
MAX_DAYS = 800


def _default_hours() -> dict[int, tuple[Interval, ...]]:
    return {day: NINE_TO_SIX for day in range(5)}


@dataclass(frozen=True)
class BusinessCalendar:
    """A working calendar in one time zone.

    ``hours`` maps weekday (0 = Monday) to sorted, non-overlapping ``(start, end)`` intervals;
    ``holidays`` are dates not worked whatever their weekday; ``workdays`` are extra worked
    dates (Chinese make-up days, often a weekend) that use ``makeup_hours``.
    """

    timezone: str = "Asia/Shanghai"
    hours: Mapping[int, tuple[Interval, ...]] = field(default_factory=_default_hours)
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    makeup_hours: tuple[Interval, ...] = NINE_TO_SIX

    # -- building -------------------------------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        *,
        timezone: str = "Asia/Shanghai",
        hours: Mapping[str | int, Sequence[Sequence[str]]] | None = None,
        holidays: Iterable[date | str] = (),
        workdays: Iterable[date | str] = (),
        makeup_hours: Sequence[Sequence[str]] | None = None,
    ) -> BusinessCalendar:
        """Build from JSON-able settings, e.g. ``hours={"0": [["09:00", "12:00"], ["13:00",
        "18:00"]]}`` and ISO dates; raises ``ValueError`` naming the bad item."""
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {timezone!r}") from exc
        parsed: dict[int, tuple[Interval, ...]] = {}
        for key, intervals in (hours if hours is not None else {}).items():
            try:
                day = int(key)
            except ValueError as exc:
                raise ValueError(f"weekday {key!r} must be 0 (Monday) to 6 (Sunday)") from exc
            if not 0 <= day <= 6:
                raise ValueError(f"weekday {key!r} must be 0 (Monday) to 6 (Sunday)")
            parsed[day] = _intervals(intervals, f"hours of weekday {day}")
        if hours is None:
            parsed = _default_hours()
        makeup = _intervals(makeup_hours, "makeup_hours") if makeup_hours else NINE_TO_SIX
        cal = cls(
            timezone=timezone,
            hours=parsed,
            holidays=frozenset(_date(d, "holidays") for d in holidays),
            workdays=frozenset(_date(d, "workdays") for d in workdays),
            makeup_hours=makeup,
        )
        if not any(cal.hours.get(d) for d in range(7)) and not cal.workdays:
            raise ValueError("the calendar has no working hours on any weekday")
        return cal

    def to_config(self) -> dict[str, Any]:
        """The JSON-able settings :meth:`from_config` reads."""

        def hhmm(moment: time) -> str:
            return "24:00" if moment == END_OF_DAY else moment.strftime("%H:%M")

        def fmt(intervals: Iterable[Interval]) -> list[list[str]]:
            return [[hhmm(a), hhmm(b)] for a, b in intervals]

        return {
            "timezone": self.timezone,
            "hours": {str(d): fmt(iv) for d, iv in sorted(self.hours.items()) if iv},
            "holidays": sorted(d.isoformat() for d in self.holidays),
            "workdays": sorted(d.isoformat() for d in self.workdays),
            "makeup_hours": fmt(self.makeup_hours),
        }

    # -- questions ------------------------------------------------------------------------------

    def working_intervals(self, day: date) -> tuple[Interval, ...]:
        """Working intervals of ``day`` (empty on holidays and days off)."""
        if day in self.holidays:
            return ()
        if day in self.workdays:
            return self.makeup_hours
        return tuple(self.hours.get(day.weekday(), ()))

    def _spans(self, day: date) -> list[tuple[datetime, datetime]]:
        zone = ZoneInfo(self.timezone)
        midnight = datetime.combine(day + timedelta(days=1), time(0), zone)
        return [
            (
                datetime.combine(day, a, zone),
                midnight if b == END_OF_DAY else datetime.combine(day, b, zone),
            )
            for a, b in self.working_intervals(day)
        ]

    def is_working_time(self, moment: datetime) -> bool:
        """Whether ``moment`` (aware) falls inside working hours."""
        local = _aware(moment).astimezone(ZoneInfo(self.timezone))
        return any(a <= local < b for a, b in self._spans(local.date()))

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The moment ``duration`` of working time after ``start``, as aware UTC.

        A start outside working hours begins counting at the next working interval; a zero
        duration gives the next working moment at or after ``start``.
        """
        if duration < timedelta(0):
            raise ValueError("duration must not be negative")
        local = _aware(start).astimezone(ZoneInfo(self.timezone))
        left = duration
        day = local.date()
        for _ in range(MAX_DAYS):
            for a, b in self._spans(day):
                begin = max(a, local)
                if begin >= b:
                    continue
                if begin + left <= b:
                    return (begin + left).astimezone(UTC)
                left -= b - begin
            day += timedelta(days=1)
        raise ValueError(f"no working time within {MAX_DAYS} days; check the calendar")

    def working_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Working time elapsed from ``start`` to ``end`` (zero if ``end`` is not later)."""
        zone = ZoneInfo(self.timezone)
        a_local, b_local = _aware(start).astimezone(zone), _aware(end).astimezone(zone)
        total = timedelta(0)
        if b_local <= a_local:
            return total
        day = a_local.date()
        while day <= b_local.date():
            for a, b in self._spans(day):
                lo, hi = max(a, a_local), min(b, b_local)
                if hi > lo:
                    total += hi - lo
            day += timedelta(days=1)
        return total


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("a timezone-aware datetime is required")
    return moment


def _clock(text: str, where: str) -> time:
    try:
        hour, minute = (int(x) for x in str(text).split(":"))
        if hour == 24 and minute == 0:
            return END_OF_DAY
        return time(hour, minute)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: {text!r} is not a time of day HH:MM") from exc


def _intervals(raw: Sequence[Sequence[str]], where: str) -> tuple[Interval, ...]:
    out: list[Interval] = []
    for item in raw:
        if len(item) != 2:
            raise ValueError(f"{where}: {item!r} must be a pair [start, end]")
        a, b = _clock(item[0], where), _clock(item[1], where)
        if a >= b:
            raise ValueError(f"{where}: interval {item[0]}–{item[1]} ends before it starts")
        if out and a < out[-1][1]:
            raise ValueError(f"{where}: interval {item[0]}–{item[1]} overlaps or is out of order")
        out.append((a, b))
    return tuple(out)


def _date(value: date | str, where: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {value!r} is not an ISO date YYYY-MM-DD") from exc


DEFAULT = BusinessCalendar()
