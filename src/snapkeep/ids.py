"""Object IDs: 24 lowercase hex characters, ObjectId style (4 bytes of creation time, 8 random)."""

from __future__ import annotations

import os
import re

from snapkeep.clock import SYSTEM, Clock

ID_PATTERN = re.compile(r"^[0-9a-f]{24}$")


def new_id(clock: Clock = SYSTEM) -> str:
    """A new ID: big-endian seconds since the epoch, then 8 random bytes."""
    seconds = int(clock.time()) & 0xFFFFFFFF
    return seconds.to_bytes(4, "big").hex() + os.urandom(8).hex()


def is_id(value: object) -> bool:
    """Whether ``value`` is a well-formed ID string."""
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None
