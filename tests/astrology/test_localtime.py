"""Civil birth times → UTC through the zone history: Mumbai 1943 and 1900, Kathmandu."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from astrology.localtime import LocalTimeError, local_mean_offset, to_utc

MUMBAI_LONGITUDE = 72.8777
KATHMANDU_LONGITUDE = 85.3240


def test_mumbai_1943_was_on_war_time() -> None:
    resolved = to_utc(datetime(1943, 6, 15, 10, 0), "Asia/Kolkata", MUMBAI_LONGITUDE)
    assert resolved.offset_seconds == 6 * 3600 + 30 * 60
    assert resolved.utc == datetime(1943, 6, 15, 3, 30, tzinfo=UTC)
    assert not resolved.local_mean_time


def test_mumbai_1900_uses_the_local_mean_time_of_mumbai_not_madras() -> None:
    resolved = to_utc(datetime(1900, 6, 15, 10, 0), "Asia/Kolkata", MUMBAI_LONGITUDE)
    # 72.8777° E × 4 min/° = 4 h 51 min 31 s (tzdata alone would give Madras time, +5:21:10).
    assert resolved.local_mean_time
    assert resolved.offset_seconds == local_mean_offset(MUMBAI_LONGITUDE) == 17491
    assert resolved.utc == datetime(1900, 6, 15, 5, 8, 29, tzinfo=UTC)


def test_kathmandu_is_five_forty_five_since_1986_and_five_thirty_before() -> None:
    now = to_utc(datetime(1990, 6, 15, 10, 0), "Asia/Kathmandu", KATHMANDU_LONGITUDE)
    assert now.utc == datetime(1990, 6, 15, 4, 15, tzinfo=UTC)
    before = to_utc(datetime(1980, 6, 15, 10, 0), "Asia/Kathmandu", KATHMANDU_LONGITUDE)
    assert before.utc == datetime(1980, 6, 15, 4, 30, tzinfo=UTC)


def test_india_after_1945_is_ist() -> None:
    resolved = to_utc(datetime(1990, 5, 17, 10, 0), "Asia/Kolkata", MUMBAI_LONGITUDE)
    assert resolved.utc == datetime(1990, 5, 17, 4, 30, tzinfo=UTC)


def test_a_time_skipped_by_a_clock_change_is_refused() -> None:
    with pytest.raises(LocalTimeError) as caught:
        to_utc(datetime(2021, 3, 28, 1, 30), "Europe/London", -0.1)
    assert caught.value.code == "time_does_not_exist"


def test_an_unknown_zone_is_refused() -> None:
    with pytest.raises(LocalTimeError) as caught:
        to_utc(datetime(2000, 1, 1), "Mars/Olympus_Mons", 0.0)
    assert caught.value.code == "unknown_time_zone"


def test_india_skipped_an_hour_when_war_time_began() -> None:
    with pytest.raises(LocalTimeError) as caught:
        to_utc(datetime(1942, 9, 1, 0, 30), "Asia/Kolkata", MUMBAI_LONGITUDE)
    assert caught.value.code == "time_does_not_exist"
    after = to_utc(datetime(1942, 9, 1, 1, 30), "Asia/Kolkata", MUMBAI_LONGITUDE)
    assert after.utc == datetime(1942, 8, 31, 19, 0, tzinfo=UTC)


def test_pakistan_and_bangladesh_before_standard_time_use_their_own_mean_time() -> None:
    dhaka = to_utc(datetime(1900, 6, 15, 10, 0), "Asia/Dhaka", 90.4125)
    assert dhaka.local_mean_time and dhaka.offset_seconds == local_mean_offset(90.4125)
    karachi = to_utc(datetime(1960, 6, 15, 10, 0), "Asia/Karachi", 67.01)
    assert karachi.utc == datetime(1960, 6, 15, 5, 0, tzinfo=UTC)  # PKT +5:00
