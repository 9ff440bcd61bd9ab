"""The Backup Job model (API.md section 4)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, model_validator

from snapkeep.engine.fs.globs import GlobError, check_glob
from snapkeep.jobs.codes import JobType, Structure
from snapkeep.jobs.models.base import (
    AbsolutePath,
    Flag,
    IdList,
    Name,
    NonNegative,
    ObjectId,
    Strict,
    Text,
    choice,
    field_error,
    integer,
    listish,
    objectish,
    shown,
)

JOB_TYPES = JobType.labels()
CONTAINS_BITS = {
    1: "account config",
    2: "home dir",
    4: "databases",
    8: "email",
    16: "cron jobs",
    32: "domains",
    64: "SSL certificates",
    128: "database users",
    256: "FTP accounts",
}
CONTAINS_ALL = 511
JOB_OPTIONS = {
    0: "include databases",
    1: "exclude email message contents",
    2: "include email contents",
    4: "exclude databases and email junk",
    6: "include junk folders",
}
STRUCTURES = Structure.labels()
DEFAULT_RETAIN = 7
DEFAULT_MANUALLY_RETAIN = 14


class Monitor(Strict):
    notran: NonNegative = Field(
        default=0, description="alert when no successful run for this many days (0 = off)"
    )
    ranfor: NonNegative = Field(
        default=0, description="alert when one run lasts longer than this many days (0 = off)"
    )


class ScheduleLink(Strict):
    id: ObjectId = Field(alias="_id", description="schedule ID")
    retain: Annotated[int, integer(1)] = Field(
        DEFAULT_RETAIN, description="backups to keep from this schedule"
    )


def _node_text(value: object) -> object:
    return "" if value is None else value


class JobFields(Strict):
    """The writable fields of a Backup Job (required: name, type, destination, contains, structure)."""

    name: Name = Field(description="free text, 1-255 characters")
    type: Annotated[int, choice(JOB_TYPES)] = Field(description="1 Accounts, 2 Directories")
    destination: IdList = Field(description="destination IDs (at least one)", min_length=1)
    contains: Annotated[int, integer(1, CONTAINS_ALL)] = Field(
        description="bitmask: " + ", ".join(f"{bit} {label}" for bit, label in CONTAINS_BITS.items())
    )
    structure: Annotated[int, choice(STRUCTURES)] = Field(
        description="1 Incremental, 2 Archived, 4 Compressed"
    )
    options: Annotated[int, choice(JOB_OPTIONS)] = Field(0, description="email and database options")
    encrypted: Flag = Field(False, description="encrypt backups at rest")
    include_list: Annotated[list[AbsolutePath], BeforeValidator(listish)] = Field(
        default_factory=list, description="absolute paths to back up (Directories jobs)"
    )
    exclude_list: Annotated[list[Text], BeforeValidator(listish)] = Field(
        default_factory=list, description="glob patterns to skip"
    )
    filters: Annotated[list[IdList], BeforeValidator(listish)] = Field(
        default_factory=list, description="account filter group IDs: inner lists OR-ed, lists AND-ed"
    )
    schedules: Annotated[list[ScheduleLink], BeforeValidator(listish)] = Field(
        default_factory=list, description="schedule links: schedules[i][_id], schedules[i][retain]"
    )
    time: Annotated[int, integer(0, 2359)] = Field(0, description="HHMM time of day for scheduled runs")
    monitor: Annotated[Monitor, BeforeValidator(objectish)] = Field(
        default_factory=lambda: Monitor(), description="monitor[notran], monitor[ranfor]: days (0 = off)"
    )
    retry_failed: Flag = Field(False, description="retry failed items once at the end of the run")
    manually_retain: Annotated[int, integer(1)] = Field(
        DEFAULT_MANUALLY_RETAIN, description="backups of manual runs to keep"
    )
    mysql_exclude_db_by_size: NonNegative = Field(0, description="skip databases larger than this (bytes)")
    disabled: Flag = Field(False, description="a disabled job is never scheduled")
    node: Annotated[str, BeforeValidator(_node_text)] = Field(
        "",
        description="the node that runs it (ID or name; default: the node serving the call; only root"
        " may change it; docs/nodes.md)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> JobFields:
        if self.time % 100 > 59:
            raise field_error("time", "must be HHMM with minutes 00-59 (got {got})", got=self.time)
        if self.type == 2 and not self.include_list:
            raise field_error("include_list", "a Directories job needs at least one absolute path")
        for index, pattern in enumerate(self.exclude_list):
            try:  # refused when saved, not when the run compiles it (attack report LOW-13)
                check_glob(pattern)
            except GlobError as error:
                raise field_error(
                    f"exclude_list[{index}]",
                    "is not a valid glob: {why} (got {got})",
                    why=error.problem,
                    got=shown(pattern),
                ) from None
        seen: set[str] = set()
        for index, link in enumerate(self.schedules):
            if link.id in seen:
                raise field_error(f"schedules[{index}][_id]", "schedule {got} is linked twice", got=link.id)
            seen.add(link.id)
        return self
