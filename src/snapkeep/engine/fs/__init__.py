"""The local file system: ``walker`` (listing, excludes, entry metadata for a backup) and
``safe_target`` (creating, replacing and removing entries below a restore target without ever
following a symlink out of it, and applying restored metadata)."""
