"""``snapkeep repo``: work on a repository directly, with nothing but the destination.

The group and its credentials options are defined here, and every sub-command is added here, in one
place: ``repo_cmd`` (init, backup, snapshots, ls, restore), ``repo_extra_cmd`` (stats, unlock, find)
and ``repo_maint_cmd`` (check, forget, prune) only define commands. The command root loads this
module lazily (``cli.main``), so ``snapkeep repo`` imports neither the web framework nor SQLAlchemy.
"""

from __future__ import annotations

import os

import click

from snapkeep.cli import repo_cmd, repo_extra_cmd, repo_maint_cmd, repo_repair_cmd
from snapkeep.cli.repo_common import _CREDENTIALS, SFTP_PASSPHRASE_ENV, SFTP_PASSWORD_ENV
from snapkeep.cli.repo_location import LocationGroup, repo_option
from snapkeep.storage.locations import Credentials


@click.group("repo", cls=LocationGroup)
@repo_option
@click.option(
    "--sftp-key-file",
    type=click.Path(dir_okay=False),
    envvar="SNAPKEEP_SFTP_KEY_FILE",
    default=None,
    help="Private key file for sftp:// locations (else $SNAPKEEP_SFTP_KEY_FILE).",
)
@click.option(
    "--sftp-fingerprint",
    envvar="SNAPKEEP_SFTP_FINGERPRINT",
    default=None,
    help="Expected SSH host key (SHA256:...) for sftp:// locations (else $SNAPKEEP_SFTP_FINGERPRINT).",
)
@click.option(
    "--s3-access-key",
    envvar="SNAPKEEP_S3_ACCESS_KEY",
    default=None,
    help="Access key for s3:// locations (else $SNAPKEEP_S3_ACCESS_KEY).",
)
@click.option(
    "--s3-secret-key",
    envvar="SNAPKEEP_S3_SECRET_KEY",
    default=None,
    help="Secret key for s3:// locations (else $SNAPKEEP_S3_SECRET_KEY, which other users cannot see in ps).",
)
@click.option(
    "--s3-region",
    envvar="SNAPKEEP_S3_REGION",
    default=None,
    help="Region for s3:// locations (else $SNAPKEEP_S3_REGION, else us-east-1).",
)
@click.pass_context
def repo_group(
    ctx: click.Context,
    sftp_key_file: str | None,
    sftp_fingerprint: str | None,
    s3_access_key: str | None,
    s3_secret_key: str | None,
    s3_region: str | None,
) -> None:
    """Work on a repository directly (disaster recovery: needs only the destination).

    PATH may also be sftp://USER@HOST:PORT/PATH or s3://ENDPOINT/BUCKET/PREFIX (s3+http:// for plain HTTP).
    With -r/--repo LOCATION or $SNAPKEEP_REPOSITORY, leave PATH out: `snapkeep repo -r /srv/repo snapshots`.
    An SFTP password or key passphrase is read from $SNAPKEEP_SFTP_PASSWORD / $SNAPKEEP_SFTP_PASSPHRASE.
    """
    ctx.meta[_CREDENTIALS] = Credentials(
        key_file=sftp_key_file or None,
        password=os.environ.get(SFTP_PASSWORD_ENV) or None,
        passphrase=os.environ.get(SFTP_PASSPHRASE_ENV) or None,
        fingerprint=sftp_fingerprint or None,
        access_key=s3_access_key or None,
        secret_key=s3_secret_key or None,
        region=s3_region or None,
    )


for _command in (*repo_cmd.COMMANDS, *repo_maint_cmd.COMMANDS, *repo_extra_cmd.COMMANDS):
    repo_group.add_command(_command)
repo_group.add_command(repo_repair_cmd.repair_group)
