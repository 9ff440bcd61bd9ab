"""Every integer code the API presents, each once: queue, item and log types and statuses, log levels,
hook positions and stages, structures, job types, schedule types and alert levels (API.md).

These numbers are part of the API contract and of the catalog (stored rows hold them), so they are
defined here and nowhere else; other modules import the enums, never write the digits. Each member
carries the name the API shows beside the number (``QueueStatus.PARTIAL.label`` is "Partially
Completed"); ``labels()`` is the ``{number: name}`` table that validation messages and ``*_name``
fields use. Log types are an enum of their own although they share the queue's numbers today
(JetBackup numbers them differently; the compatibility work renumbers them without touching queues).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Self


class Code(IntEnum):
    """An API code: an ``int`` with the name the API shows for it."""

    label: str

    def __new__(cls, value: int, label: str = "") -> Self:
        member = int.__new__(cls, value)
        member._value_ = value
        member.label = label
        return member

    @classmethod
    def labels(cls) -> dict[int, str]:
        """``{number: name}`` of every member, in definition order."""
        return {int(member): member.label for member in cls}

    @classmethod
    def label_of(cls, value: int) -> str:
        """The name of ``value``, or the number as text when it is not a member (an old row)."""
        try:
            return cls(value).label
        except ValueError:
            return str(value)


class QueueType(Code):
    BACKUP = 1, "Backup"
    RESTORE = 2, "Restore"
    DOWNLOAD = 4, "Download"
    REINDEX = 8, "Reindex"


class QueueStatus(Code):
    PENDING = 1, "Pending"
    PROCESSING = 2, "Processing"
    COMPLETED = 100, "Completed"
    PARTIAL = 101, "Partially Completed"
    FAILED = 102, "Failed"
    ABORTED = 103, "Aborted"
    NEVER_FINISHED = 104, "Never Finished"

    @property
    def finished(self) -> bool:
        """Whether a group with this status has ended."""
        return self >= QueueStatus.COMPLETED


#: the statuses of a group that has not ended yet
ACTIVE = (QueueStatus.PENDING, QueueStatus.PROCESSING)
#: the statuses of a group that has ended
FINISHED = frozenset(status for status in QueueStatus if status.finished)
#: the finished statuses that ``rerunFailedQueueGroup`` accepts
RERUNNABLE = frozenset(FINISHED - {QueueStatus.COMPLETED})
#: queue types that restore from a backup (restore and download workers)
RESTORE_TYPES = (QueueType.RESTORE, QueueType.DOWNLOAD)


class ItemStatus(Code):
    """A queue item's status (the numbers of the queue statuses)."""

    PENDING = 1, "Pending"
    PROCESSING = 2, "Processing"
    COMPLETED = 100, "Completed"
    PARTIAL = 101, "Partially Completed"
    FAILED = 102, "Failed"
    ABORTED = 103, "Aborted"
    NEVER_FINISHED = 104, "Never Finished"


class LogType(Code):
    """JetBackup 5's log types (not the queue's numbers: migration 9 moved stored logs to these)."""

    BACKUP = 1, "Backup"
    DOWNLOAD = 2, "Download"
    RESTORE = 3, "Restore"
    SYSTEM = 4, "System"
    REINDEX = 5, "Reindex"

    @classmethod
    def of_queue(cls, queue_type: int) -> LogType:
        """The log type of a run of a queue group of ``queue_type``."""
        return _LOG_TYPE_OF_QUEUE[QueueType(queue_type)]


class LogStatus(Code):
    COMPLETED = 1, "Completed"
    FAILED = 2, "Failed"
    ABORTED = 3, "Aborted"
    PARTIAL = 4, "Partially Completed"
    NEVER_FINISHED = 5, "Never Finished"
    PROCESSING = 6, "Processing"

    @classmethod
    def of_queue(cls, status: int) -> LogStatus:
        """The log status of a run whose queue group ended with ``status`` (Failed when unknown)."""
        return _LOG_STATUS_OF_QUEUE.get(status, LogStatus.FAILED)


class LogLevel(Code):
    INFO = 1, "info"
    WARNING = 2, "warning"
    ERROR = 3, "error"


class HookPosition(Code):
    # in the order the API has always listed them
    BACKUP = 1, "Backup"
    RESTORE = 2, "Restore"
    DOWNLOAD = 4, "Download"
    BACKUP_ACCOUNT = 8, "Backup Account"
    REINDEX = 5, "Reindex"


class HookStage(Code):
    PRE = 1, "pre"
    POST = 2, "post"


class Structure(Code):
    INCREMENTAL = 1, "Incremental"
    ARCHIVED = 2, "Archived"
    COMPRESSED = 4, "Compressed"


class JobType(Code):
    ACCOUNTS = 1, "Accounts"
    DIRECTORIES = 2, "Directories"


class ScheduleType(Code):
    HOURLY = 1, "Hourly"
    DAILY = 2, "Daily"
    WEEKLY = 3, "Weekly"
    MONTHLY = 4, "Monthly"
    AFTER_JOB = 5, "After Backup Job Done"


class AlertLevel(Code):
    INFO = 1, "info"
    WARNING = 2, "warning"
    CRITICAL = 3, "critical"


_LOG_TYPE_OF_QUEUE: dict[int, LogType] = {
    QueueType.BACKUP: LogType.BACKUP,
    QueueType.RESTORE: LogType.RESTORE,
    QueueType.DOWNLOAD: LogType.DOWNLOAD,
    QueueType.REINDEX: LogType.REINDEX,
}
_LOG_STATUS_OF_QUEUE: dict[int, LogStatus] = {
    QueueStatus.COMPLETED: LogStatus.COMPLETED,
    QueueStatus.PARTIAL: LogStatus.PARTIAL,
    QueueStatus.FAILED: LogStatus.FAILED,
    QueueStatus.ABORTED: LogStatus.ABORTED,
    QueueStatus.NEVER_FINISHED: LogStatus.NEVER_FINISHED,
}
