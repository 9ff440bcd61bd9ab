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

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("snapkeep")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

__all__ = ["__version__"]
