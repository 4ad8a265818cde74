"""Business calendars: working hours, lunch breaks, holidays, make-up days (调休), time zones."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.calendar import BusinessCalendar

SHANGHAI = ZoneInfo("Asia/Shanghai")
H = timedelta(hours=1)


def sh(*args: int) -> datetime:
    """A moment in Shanghai local time."""
    return datetime(*args, tzinfo=SHANGHAI)


# 2024-03-08 is a Friday; 2024-03-11 the Monday after.
FRIDAY_17 = sh(2024, 3, 8, 17)
MONDAY_NOON = sh(2024, 3, 11, 12)

LUNCH = BusinessCalendar.from_config(
    hours={str(d): [["09:00", "12:00"], ["13:00", "18:00"]] for d in range(5)}
)


def test_friday_five_pm_plus_four_working_hours_is_monday_noon():
    cal = BusinessCalendar()  # Mon–Fri 09:00–18:00, Asia/Shanghai
    due = cal.add(FRIDAY_17, 4 * H)
    assert due == MONDAY_NOON
    assert due.tzinfo == UTC  # answers are aware UTC, whatever the input's zone
    assert cal.add(FRIDAY_17.astimezone(UTC), 4 * H) == MONDAY_NOON


def test_lunch_break_is_not_working_time():
    # Three hours of Monday morning fill the target exactly: due at 12:00, before lunch.
    assert LUNCH.add(FRIDAY_17, 4 * H) == MONDAY_NOON
    # One more hour jumps the lunch break.
    assert LUNCH.add(FRIDAY_17, 5 * H) == sh(2024, 3, 11, 14)
    assert not LUNCH.is_working_time(sh(2024, 3, 11, 12, 30))
    assert LUNCH.working_time_between(sh(2024, 3, 11, 11), sh(2024, 3, 11, 14)) == 2 * H


def test_start_outside_working_hours_counts_from_the_next_opening():
    cal = BusinessCalendar()
    assert cal.add(sh(2024, 3, 9, 10), 2 * H) == sh(2024, 3, 11, 11)  # Saturday
    assert cal.add(sh(2024, 3, 11, 7, 30), 30 * timedelta(minutes=1)) == sh(2024, 3, 11, 9, 30)
    assert cal.add(sh(2024, 3, 8, 20), timedelta(0)) == sh(2024, 3, 11, 9)


def test_is_working_time():
    cal = BusinessCalendar()
    assert cal.is_working_time(sh(2024, 3, 8, 9))
    assert cal.is_working_time(sh(2024, 3, 8, 17, 59))
    assert not cal.is_working_time(sh(2024, 3, 8, 18))  # the end of the day is not in it
    assert not cal.is_working_time(sh(2024, 3, 8, 8, 59))
    assert not cal.is_working_time(sh(2024, 3, 9, 10))  # Saturday
    # 10:00 in Shanghai is 03:00 in Berlin: the same moment, judged on the Berlin calendar.
    assert not BusinessCalendar(timezone="Europe/Berlin").is_working_time(sh(2024, 3, 8, 10))
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.is_working_time(datetime(2024, 3, 8, 10))


def test_holidays_are_skipped():
    # Qingming 2024: Thursday 4 and Friday 5 April off.
    cal = BusinessCalendar(holidays=frozenset({date(2024, 4, 4), date(2024, 4, 5)}))
    wednesday_17 = sh(2024, 4, 3, 17)
    assert cal.add(wednesday_17, 4 * H) == sh(2024, 4, 8, 12)  # Monday
    assert not cal.is_working_time(sh(2024, 4, 4, 10))
    assert cal.working_time_between(wednesday_17, sh(2024, 4, 8, 12)) == 4 * H
    # Without the holidays, the same target falls on Thursday.
    assert BusinessCalendar().add(wednesday_17, 4 * H) == sh(2024, 4, 4, 12)


def test_makeup_saturday_is_worked():
    # Labour Day 2024: Saturday 11 May was worked to bridge the holiday.
    cal = BusinessCalendar.from_config(workdays=["2024-05-11"])
    friday_17 = sh(2024, 5, 10, 17)
    assert cal.add(friday_17, 4 * H) == sh(2024, 5, 11, 12)
    assert cal.is_working_time(sh(2024, 5, 11, 10))
    assert not cal.is_working_time(sh(2024, 5, 18, 10))  # the next Saturday is not
    assert cal.working_time_between(friday_17, sh(2024, 5, 13, 9)) == 10 * H


def test_a_holiday_week_with_makeup_days_china_national_day():
    # National Day 2024: 1–7 October off, Sunday 29 September and Saturday 12 October worked.
    cal = BusinessCalendar.from_config(
        holidays=[f"2024-10-0{d}" for d in range(1, 8)],
        workdays=["2024-09-29", "2024-10-12"],
    )
    # Friday 27 September 17:00 + 4 h: one hour on Friday, three on the make-up Sunday.
    assert cal.add(sh(2024, 9, 27, 17), 4 * H) == sh(2024, 9, 29, 12)
    # Monday 30 September 17:00 + 4 h: the holiday week is skipped, Tuesday 8 October.
    assert cal.add(sh(2024, 9, 30, 17), 4 * H) == sh(2024, 10, 8, 12)
    # Three working days from Wednesday 9 October 10:00 run into the make-up Saturday.
    assert cal.add(sh(2024, 10, 9, 10), 27 * H) == sh(2024, 10, 12, 10)


def test_calendar_in_another_time_zone_counts_local_working_hours():
    berlin = ZoneInfo("Europe/Berlin")
    cal = BusinessCalendar(timezone="Europe/Berlin")
    # Friday 29 March 2024 17:00 in Berlin (UTC+1); clocks go forward on Sunday 31 March.
    due = cal.add(datetime(2024, 3, 29, 17, tzinfo=berlin), 4 * H)
    assert due == datetime(2024, 4, 1, 12, tzinfo=berlin)
    assert due == datetime(2024, 4, 1, 10, tzinfo=UTC)  # UTC+2 by then


def test_config_round_trip():
    cal = BusinessCalendar.from_config(
        timezone="Asia/Hong_Kong",
        hours={
            "0": [["08:30", "12:00"], ["13:30", "17:30"]],
            "2": [["09:00", "18:00"]],
            "5": [["10:00", "14:00"]],
        },
        holidays=["2024-10-01", date(2024, 10, 2)],
        workdays=["2024-09-29"],
        makeup_hours=[["09:00", "17:00"]],
    )
    config = cal.to_config()
    assert config == {
        "timezone": "Asia/Hong_Kong",
        "hours": {
            "0": [["08:30", "12:00"], ["13:30", "17:30"]],
            "2": [["09:00", "18:00"]],
            "5": [["10:00", "14:00"]],
        },
        "holidays": ["2024-10-01", "2024-10-02"],
        "workdays": ["2024-09-29"],
        "makeup_hours": [["09:00", "17:00"]],
    }
    assert BusinessCalendar.from_config(**config) == cal
    assert BusinessCalendar.from_config(**BusinessCalendar().to_config()) == BusinessCalendar()


def test_round_the_clock_calendar_round_trips_and_counts_whole_days():
    always = BusinessCalendar.from_config(hours={str(d): [["00:00", "24:00"]] for d in range(7)})
    assert always.to_config()["hours"]["0"] == [["00:00", "24:00"]]
    assert BusinessCalendar.from_config(**always.to_config()) == always
    monday = sh(2024, 3, 11)
    assert always.add(monday, 48 * H) == sh(2024, 3, 13)
    assert always.working_time_between(monday, sh(2024, 3, 18)) == timedelta(days=7)
    assert always.is_working_time(sh(2024, 3, 11, 23, 59, 59))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"hours": {"7": [["09:00", "18:00"]]}}, "weekday '7'"),
        ({"hours": {"0": [["18:00", "09:00"]]}}, "ends before it starts"),
        ({"hours": {"0": [["09:00", "13:00"], ["12:00", "18:00"]]}}, "overlaps"),
        ({"hours": {"0": [["9h", "18:00"]]}}, "not a time of day"),
        ({"holidays": ["1 May"]}, "not an ISO date"),
        ({"hours": {}}, "no working hours"),
    ],
)
def test_bad_config_is_refused_with_a_reason(settings, message):
    with pytest.raises(ValueError, match=message):
        BusinessCalendar.from_config(**settings)


CALENDARS = {
    "default": BusinessCalendar(),
    "lunch": LUNCH,
    "holidays": BusinessCalendar.from_config(
        holidays=["2024-03-12", "2024-03-13"], workdays=["2024-03-16"]
    ),
}


@pytest.mark.parametrize("name", sorted(CALENDARS))
@pytest.mark.parametrize(
    "start",
    [
        FRIDAY_17,
        sh(2024, 3, 9, 11),  # a Saturday
        sh(2024, 3, 11, 12, 15),  # inside a lunch break, for the calendar that has one
        sh(2024, 3, 11, 20, 40),  # evening
        sh(2024, 3, 12, 9),  # a holiday, for the calendar that has it
    ],
)
@pytest.mark.parametrize("minutes", [0, 1, 45, 240, 540, 1620, 2700, 6000])
def test_working_time_between_is_the_inverse_of_add(name, start, minutes):
    cal = CALENDARS[name]
    duration = timedelta(minutes=minutes)
    end = cal.add(start, duration)
    assert end >= start
    assert cal.working_time_between(start, end) == duration
    if minutes:
        # The deadline is the first moment at which that much working time has passed.
        assert cal.working_time_between(start, end - timedelta(seconds=1)) < duration


def test_working_time_between_is_zero_backwards_and_additive():
    cal = CALENDARS["holidays"]
    a, b, c = FRIDAY_17, sh(2024, 3, 14, 10), sh(2024, 3, 18, 16)
    assert cal.working_time_between(b, a) == timedelta(0)
    assert cal.working_time_between(a, c) == (
        cal.working_time_between(a, b) + cal.working_time_between(b, c)
    )
    with pytest.raises(ValueError, match="negative"):
        cal.add(a, -H)
