"""The data directory (DESIGN.md section 7): where the catalog, keys, logs and run files live."""

from __future__ import annotations

import os
from pathlib import Path


def default_home() -> Path:
    """``SNAPKEEP_HOME``, else /var/lib/snapkeep as root, else ~/.local/share/snapkeep."""
    configured = os.environ.get("SNAPKEEP_HOME")
    if configured:
        return Path(configured).expanduser().absolute()
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/snapkeep")
    return Path.home() / ".local" / "share" / "snapkeep"
