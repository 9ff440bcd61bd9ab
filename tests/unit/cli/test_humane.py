"""Issue 14 item 5: sizes, durations and local times as people read them."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from snapkeep.cli.humane import human_duration, human_size, local_time


def test_sizes() -> None:
    assert [human_size(n) for n in (0, 512, 1536, 5 * 1024**2, 3 * 1024**3, 2 * 1024**4)] == [
        "0 B", "512 B", "1.5 KiB", "5.0 MiB", "3.0 GiB", "2.0 TiB",
    ]  # fmt: skip


def test_durations() -> None:
    assert [human_duration(s) for s in (None, 0, 42, 185, 7620, 3 * 86400 + 4 * 3600)] == [
        "-", "0s", "42s", "3m 05s", "2h 07m", "3d 04h",
    ]  # fmt: skip


def test_local_times_carry_their_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    assert local_time("2026-12-05T12:45:00+00:00", berlin) == "2026-12-05 13:45:00 CET"
    assert local_time("2026-07-05T12:45:00+00:00", berlin) == "2026-07-05 14:45:00 CEST"
    assert local_time("2026-12-05T12:45:00+00:00", dt.UTC) == "2026-12-05 12:45:00 UTC"
    assert local_time(None) == "-"
    assert local_time("soon") == "soon"
