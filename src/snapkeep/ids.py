"""Object IDs: 24 lowercase hex characters, ObjectId style (4 bytes of creation time, 8 random)."""

from __future__ import annotations

import datetime as _dt
import os
import re

from snapkeep.clock import SYSTEM, UTC, Clock

ID_PATTERN = re.compile(r"^[0-9a-f]{24}$")


def new_id(clock: Clock = SYSTEM) -> str:
    """A new ID: big-endian seconds since the epoch, then 8 random bytes."""
    seconds = int(clock.time()) & 0xFFFFFFFF
    return seconds.to_bytes(4, "big").hex() + os.urandom(8).hex()


def is_id(value: object) -> bool:
    """Whether ``value`` is a well-formed ID string."""
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def id_time(value: str) -> _dt.datetime:
    """The creation time encoded in an ID. Raises ValueError for a malformed ID."""
    if not is_id(value):
        raise ValueError(f"not an ID: {value!r}")
    return _dt.datetime.fromtimestamp(int(value[:8], 16), UTC)
