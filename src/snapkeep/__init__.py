"""snapkeep: a backup server for Linux hosts and web-hosting servers.

Glossary
--------
job          what to back up, where to, in which structure, when and how many to keep (API.md section 4)
destination  a byte store backups are written to: Local, SFTP or S3
repository   one engine repository per (destination, job): ``<destination root>/<job _id>/``
snapshot     one backup: a root tree plus metadata, written last
blob         a compressed, optionally sealed chunk or tree, addressed by its keyed BLAKE3 ID
pack         a file of blobs with a sealed trailer listing them
catalog      the SQL database holding jobs, destinations, schedules, queue, logs, alerts and tokens
"""

from __future__ import annotations

import functools

__all__ = ["__version__"]


@functools.cache
def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("snapkeep")
    except PackageNotFoundError:  # running from a source tree without installation
        return "0.0.0"


def __getattr__(name: str) -> str:
    """``__version__``, looked up when first asked for: ``importlib.metadata`` costs 50 ms and
    2 MB, which a restore worker process or ``snapkeep repo`` need not pay."""
    if name == "__version__":
        return _installed_version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
