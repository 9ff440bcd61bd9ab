"""Sizes, durations and times as people read them (issue 14 item 5); JSON keeps bytes, seconds and
ISO-8601 UTC. No imports beyond the standard library: ``snapkeep repo`` uses it and starts fast."""

from __future__ import annotations

import datetime as _dt
import stat

NONE_SHOWN = "-"


def human_size(count: int) -> str:
    """``count`` bytes for people: ``512 B``, ``1.5 MiB``."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def plural(count: int, noun: str) -> str:
    """``1 file``, ``2 files``, ``0 entries``, ``3 matches``: a count with its noun agreeing."""
    if count == 1:
        return f"{count} {noun}"
    if noun.endswith("y") and noun[-2:-1] not in ("a", "e", "o", "u"):
        return f"{count} {noun[:-1]}ies"
    if noun.endswith(("s", "sh", "ch", "x")):
        return f"{count} {noun}es"
    return f"{count} {noun}s"


def human_duration(seconds: float | None) -> str:
    """``42s``, ``3m 05s``, ``2h 07m``, ``3d 04h``; ``-`` when unknown."""
    if seconds is None:
        return NONE_SHOWN
    whole = max(0, round(seconds))
    minutes, second = divmod(whole, 60)
    hours, minute = divmod(minutes, 60)
    days, hour = divmod(hours, 24)
    if days:
        return f"{days}d {hour:02d}h"
    if hours:
        return f"{hours}h {minute:02d}m"
    if minutes:
        return f"{minutes}m {second:02d}s"
    return f"{second}s"


def local_time(value: str | None, zone: _dt.tzinfo | None = None) -> str:
    """An ISO-8601 time in the local zone (or ``zone``), with the zone's name: ``2026-12-05 13:45:00
    CET``; ``-`` when unset; the text as it is when it is not a time."""
    if not value:
        return NONE_SHOWN
    try:
        moment = _dt.datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.UTC)
    shown = moment.astimezone(zone)
    return shown.strftime("%Y-%m-%d %H:%M:%S ") + (shown.tzname() or shown.strftime("%z"))


_TYPE_LETTERS = {"dir": "d", "symlink": "l", "fifo": "p", "chardev": "c", "blockdev": "b", "socket": "s"}


def ls_long(
    kind: str, mode: int, owner: object, group: object, size: int, mtime_ns: int, path: str, target: str = ""
) -> str:
    """One entry as ``ls -l`` shows it: ``lrwxrwxrwx alice/www   12 2026-12-05 13:45 /path -> target``
    (a hard link's target too)."""
    moment = _dt.datetime.fromtimestamp(mtime_ns / 1e9, tz=_dt.UTC).astimezone()
    line = (
        f"{_TYPE_LETTERS.get(kind, '-')}{stat.filemode(mode)[1:]} {owner}/{group} {size:>12} "
        f"{moment:%Y-%m-%d %H:%M} {path}"
    )
    return f"{line} -> {target}" if target else line
