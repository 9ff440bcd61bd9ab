"""Progress callbacks for backup and restore: the engine reports, it never prints.

The backup and restore call these methods, possibly from several worker threads at once; an
implementation that keeps state must guard it. ``Progress`` itself does nothing, so callers
subclass it and override what they need (the CLI draws a progress bar, the job runner writes log
lines). ``ProgressCounter`` keeps thread-safe totals, which tests and simple callers use.
"""

from __future__ import annotations

import threading


class Progress:
    """The callbacks the engine calls. Every method is a no-op here."""

    def on_start(self, total_files: int | None, total_bytes: int | None) -> None:
        """Work begins; totals are known for a restore and unknown (``None``) for a backup."""

    def on_file(self, path: str, size: int) -> None:
        """One entry (file, directory, link...) of ``size`` bytes is done; ``path`` is for display."""

    def on_bytes(self, count: int) -> None:
        """``count`` more content bytes were read (backup) or written (restore)."""

    def on_warning(self, path: str, message: str) -> None:
        """``path`` could not be handled; the run goes on."""

    def on_finish(self) -> None:
        """Work is over (successfully or not)."""


class ProgressCounter(Progress):
    """Totals of everything reported, safe to update from several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.files = 0
        self.bytes = 0
        self.current = ""
        self.warnings: list[tuple[str, str]] = []
        self.total_files: int | None = None
        self.total_bytes: int | None = None
        self.finished = False

    def on_start(self, total_files: int | None, total_bytes: int | None) -> None:
        self.total_files = total_files
        self.total_bytes = total_bytes

    def on_file(self, path: str, size: int) -> None:
        with self._lock:
            self.files += 1
            self.current = path

    def on_bytes(self, count: int) -> None:
        with self._lock:
            self.bytes += count

    def on_warning(self, path: str, message: str) -> None:
        with self._lock:
            self.warnings.append((path, message))

    def on_finish(self) -> None:
        self.finished = True
