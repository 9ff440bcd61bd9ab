"""``snapkeep repo check|forget|prune``: keep a repository healthy and small.

    snapkeep repo check PATH [--read-data | --read-data-subset N%] [--no-lock] [--json]
    snapkeep repo forget PATH [--keep-last N] [SNAPSHOT...] [--dry-run] [--json]
    snapkeep repo prune PATH [--repack-threshold F] [--dry-run] [--json]

The commands are added to the ``repo`` group by ``cli.repo``.

``check`` covers both structures of a destination: the incremental repository (snapshots, trees,
index, packs: ``maintenance.check``) and the Archived/Compressed archives (manifests, sizes, sealed
segments; with ``--read-data`` the decompressed tar stream: ``archive.check``), and prints what it
checked per structure.

Exit codes: 0 done (check: no damage; unindexed packs are not damage); 8 check found damage (the
problems and the snapshots, files and archives they affect are printed); other codes come from the error
(``snapkeep.errors``), e.g. 7 wrong password, 9 locked.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import click

from snapkeep.cli.humane import human_size, plural
from snapkeep.cli.repo_common import (
    emit_json,
    json_option,
    location_argument,
    make_progress,
    open_repository,
    password_option,
)
from snapkeep.engine.archive.check import ArchiveCheckReport, check_archives
from snapkeep.engine.format import DATA_PREFIX
from snapkeep.engine.maintenance.check import CheckReport, check, open_without_index, subset_of
from snapkeep.engine.maintenance.forget import KeepPolicy, forget, parse_span
from snapkeep.engine.maintenance.prune import prune
from snapkeep.errors import IntegrityError

__all__ = ["COMMANDS", "check_command", "forget_command", "prune_command"]

EXIT_DAMAGED = IntegrityError.exit_code


def describe(report: CheckReport) -> Iterator[str]:
    """Human-readable lines for a report: problems, then the entries they affect."""
    for problem in report.problems:
        yield f"error: {problem}"
    for affected in report.affected:
        yield f"affected: snapshot {affected.snapshot[:12]} {affected.path}: {affected.reason}"


def _percent(value: str | None) -> float | None:
    if value is None:
        return None
    text = value.strip().rstrip("%")
    try:
        percent = float(text)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a percentage such as 10%") from None
    if not 0 < percent <= 100:
        raise click.BadParameter(f"{value!r} must be above 0% and at most 100%")
    return percent


@click.command("check")
@location_argument
@click.option("--read-data", is_flag=True, help="Read every pack and archive, verify every blob and member.")
@click.option(
    "--read-data-subset", "subset", metavar="N%", default=None, help="Read N% of the packs and archives."
)
@click.option("--no-lock", is_flag=True, help="Take no lock (a read-only destination).")
@password_option
@json_option
def check_command(
    location: str,
    read_data: bool,
    subset: str | None,
    no_lock: bool,
    password_file: Path | None,
    as_json: bool,
) -> None:
    """Verify the repository at PATH (snapshots, packs, index and archives); exit 8 and name the
    damage when there is any."""
    percent = _percent(subset)
    with open_repository(location, password_file, opener=open_without_index) as repository:
        lock = (
            contextlib.nullcontext() if no_lock else repository.lock(exclusive=False, holder="snapkeep check")
        )
        with lock:
            progress = make_progress("check", as_json) if read_data or percent else None
            report = check(repository, read_data=read_data, subset_percent=percent, progress=progress)
            seed = repository.config.repository_id
            archives = check_archives(
                repository,
                read_data=read_data,
                choose=(lambda ids: subset_of(ids, percent, seed)) if percent is not None else None,
                progress=make_progress("check archives", as_json) if read_data or percent else None,
            )
            pack_bytes = sum(item.size for item in repository.store.list(DATA_PREFIX))
    ok = report.ok and archives.ok
    if as_json:
        emit_json(
            {
                **report.to_dict(),
                "ok": ok,
                "problems": [
                    *(asdict(problem) for problem in report.problems),
                    *(asdict(problem) for problem in archives.problems),
                ],
                "pack_bytes": pack_bytes,
                "archives": archives.to_dict(),
            }
        )
    else:
        for line in describe(report):
            click.echo(line, err=True)
        for problem in archives.problems:
            click.echo(f"error: {problem}", err=True)
        if report.unindexed_packs:
            click.echo(
                f"{len(report.unindexed_packs)} packs are not indexed (left by an interrupted backup; "
                "prune removes them)"
            )
        for line in summary_lines(report, archives, pack_bytes, read=bool(read_data or percent)):
            click.echo(line)
        if not report.authenticated:
            click.echo("note: unencrypted repository: nothing proves who wrote its contents", err=True)
    if not ok:
        sys.exit(EXIT_DAMAGED)


def summary_lines(
    report: CheckReport, archives: ArchiveCheckReport, pack_bytes: int, *, read: bool
) -> list[str]:
    """What ``check`` looked at, one line per structure, then the verdict."""
    incremental = (
        f"incremental: {plural(report.snapshots, 'snapshot')}, {plural(report.trees, 'tree')}, "
        f"{plural(len(report.used_blobs), 'blob')} used, {plural(report.packs, 'pack')} "
        f"({human_size(pack_bytes)}), {plural(report.index_files, 'index file')}"
    )
    if read:
        incremental += f"; read {report.packs_read} packs, verified {report.blobs_verified} blobs"
    incremental += ": " + ("ok" if report.ok else plural(len(report.problems), "problem"))
    counts = ", ".join(f"{count} {structure}" for structure, count in sorted(archives.archives.items()))
    described = f"{counts or 'none'} ({human_size(archives.bytes)})"
    if archives.sealed_checked:
        described += f", every sealed segment of {archives.sealed_checked} encrypted archives opened"
    if read:
        described += (
            f"; read {archives.archives_read} archives ({human_size(archives.tar_bytes_read)} of tar), "
            f"verified {archives.members_verified} members"
        )
    damaged = f"{plural(len(archives.problems), 'problem')} in {plural(len(archives.damaged), 'archive')}"
    lines = [incremental, f"archives: {described}: {'ok' if archives.ok else damaged}"]
    problems = len(report.problems) + len(archives.problems)
    lines.append("no errors" if not problems else f"{problems} ERRORS")
    return lines


@click.command("forget")
@location_argument
@click.argument("snapshot_ids", nargs=-1, metavar="[SNAPSHOT]...")
@click.option("--keep-last", type=int, default=None, metavar="N", help="Keep the newest N snapshots.")
@click.option(
    "--keep-hourly", type=int, default=None, metavar="N", help="Keep the newest of each of the last N hours."
)
@click.option(
    "--keep-daily", type=int, default=None, metavar="N", help="Keep the newest of each of the last N days."
)
@click.option(
    "--keep-weekly", type=int, default=None, metavar="N", help="Keep the newest of each of the last N weeks."
)
@click.option(
    "--keep-monthly",
    type=int,
    default=None,
    metavar="N",
    help="Keep the newest of each of the last N months.",
)
@click.option(
    "--keep-yearly", type=int, default=None, metavar="N", help="Keep the newest of each of the last N years."
)
@click.option(
    "--keep-within", default=None, metavar="SPAN", help="Keep all within SPAN (1y6m, 30d, 12h) of the newest."
)
@click.option(
    "--keep-tag", "keep_tags", multiple=True, metavar="TAG", help="Keep every snapshot with TAG (repeatable)."
)
@click.option("--dry-run", "-n", is_flag=True, help="Only show what would be removed.")
@password_option
@json_option
def forget_command(
    location: str,
    snapshot_ids: tuple[str, ...],
    keep_last: int | None,
    keep_hourly: int | None,
    keep_daily: int | None,
    keep_weekly: int | None,
    keep_monthly: int | None,
    keep_yearly: int | None,
    keep_within: str | None,
    keep_tags: tuple[str, ...],
    dry_run: bool,
    password_file: Path | None,
    as_json: bool,
) -> None:
    """Remove snapshots: by ID or prefix, or those no --keep-* rule keeps (restic's rules); prune
    frees their data."""
    policy = KeepPolicy(
        last=keep_last,
        hourly=keep_hourly,
        daily=keep_daily,
        weekly=keep_weekly,
        monthly=keep_monthly,
        yearly=keep_yearly,
        within=parse_span(keep_within) if keep_within else None,
        tags=frozenset(keep_tags),
    )
    with open_repository(location, password_file, opener=open_without_index) as repository:
        plan = forget(repository, ids=snapshot_ids, dry_run=dry_run, policy=policy)
    if as_json:
        emit_json(plan.to_dict(dry_run=dry_run))
        return
    verb = "would remove" if dry_run else "removed"
    for snapshot_id in plan.removed_ids:
        click.echo(f"{verb} snapshot {snapshot_id[:12]}: {plan.reasons[snapshot_id]}")
    click.echo(f"{verb} {plural(len(plan.removed_ids), 'snapshot')}, kept {len(plan.keep)}")


@click.command("prune")
@location_argument
@click.option(
    "--repack-threshold",
    type=click.FloatRange(0.0, 1.0),
    default=0.5,
    show_default=True,
    help="Rewrite packs whose garbage share is above this fraction.",
)
@click.option("--dry-run", "-n", is_flag=True, help="Only show what would be deleted.")
@password_option
@json_option
def prune_command(
    location: str, repack_threshold: float, dry_run: bool, password_file: Path | None, as_json: bool
) -> None:
    """Delete data no snapshot uses; rewrite packs that are mostly garbage. Safe to interrupt."""
    with open_repository(location, password_file) as repository:
        report = prune(
            repository,
            repack_threshold=repack_threshold,
            dry_run=dry_run,
            progress=make_progress("prune", as_json),
        )
    if as_json:
        emit_json(report.to_dict())
        return
    unused = len(report.deleted_packs) + len(report.unindexed_deleted)
    rewritten = (
        f"{len(report.repacked_packs)} packs ({report.blobs_repacked} blobs into {len(report.new_packs)})"
    )
    if dry_run:
        action = (
            f"would delete {unused} packs and rewrite {rewritten}, freeing about {report.bytes_freed} bytes"
        )
    else:
        action = f"deleted {unused} packs, rewrote {rewritten}, freed {report.bytes_freed} bytes"
    click.echo(f"{plural(report.snapshots, 'snapshot')} use {plural(report.used_blobs, 'blob')}; {action}")
    if report.unindexed_kept:
        click.echo(
            f"kept {len(report.unindexed_kept)} unindexed packs: a recently active backup may still own them",
            err=True,
        )
    for pack_id in report.damaged_packs:
        click.echo(f"warning: pack {pack_id} was not rewritten: a used blob in it is damaged", err=True)


COMMANDS = [check_command, forget_command, prune_command]
