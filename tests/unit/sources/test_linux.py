"""The linux provider on injected passwd entries and real folders (no database engines asked)."""

from __future__ import annotations

import pwd

import pytest

from snapkeep.errors import ConfigError, NotFoundError
from snapkeep.sources.accounts.linux import LinuxOptions, LinuxProvider


def entry(name, uid, home):
    return pwd.struct_passwd((name, "x", uid, uid, "", str(home), "/bin/sh"))


def test_users_in_range_with_home_crontab_and_maildir(tmp_path):
    spool = tmp_path / "crontabs"
    spool.mkdir()
    (spool / "alice").write_text("* * * * * true\n")
    homes = {name: tmp_path / name for name in ("alice", "bob", "daemon", "ghost")}
    for name in ("alice", "bob", "daemon"):
        homes[name].mkdir()
    (homes["alice"] / "Maildir" / "cur").mkdir(parents=True)
    (homes["alice"] / "file").write_bytes(b"12345")
    users = [
        entry("bob", 1001, homes["bob"]),
        entry("alice", 1000, homes["alice"]),
        entry("daemon", 1, homes["daemon"]),  # system user: below the range
        entry("ghost", 1002, homes["ghost"]),  # no home
        entry("big", 70000, homes["bob"]),  # above the range
    ]
    options = LinuxOptions(cron_spool=str(spool), engines=(), suspended=("bob",))
    provider = LinuxProvider(options, users=lambda: users)
    accounts = provider.list_accounts()
    assert [account.username for account in accounts] == ["alice", "bob"]
    alice, bob = accounts
    assert alice.cron_file == str(spool / "alice")
    assert bob.cron_file == ""
    assert alice.mail_root == str(homes["alice"] / "Maildir")
    assert bob.mail_root == ""
    assert alice.disk_usage == 5
    assert alice.inodes == 4
    assert bob.suspended
    assert not alice.suspended
    assert alice.extra["uid"] == 1000
    assert provider.get_account("bob").home == str(homes["bob"])
    with pytest.raises(NotFoundError):
        provider.get_account("daemon")


def test_database_servers_that_do_not_answer_are_recorded(tmp_path):
    from snapkeep.sources.dbclient import DatabaseSettings

    (tmp_path / "carol").mkdir()
    broken = DatabaseSettings(mariadb_client=str(tmp_path / "no-such-client"), psql=str(tmp_path / "no-psql"))
    provider = LinuxProvider(
        LinuxOptions(measure=False), settings=broken, users=lambda: [entry("carol", 1500, tmp_path / "carol")]
    )
    (carol,) = provider.list_accounts()
    assert carol.databases == ()
    assert len(carol.extra["discovery_errors"]) == 2
    assert "cannot run" in carol.extra["discovery_errors"][0]


def test_bad_range_is_refused():
    with pytest.raises(ConfigError, match="uid_min 5000 is above uid_max 10"):
        LinuxProvider(LinuxOptions(uid_min=5000, uid_max=10))
