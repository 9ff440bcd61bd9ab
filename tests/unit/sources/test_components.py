"""Account components in their fixed layout: every ``contains`` bit, excludes, parent reuse."""

from __future__ import annotations

import json
import os

import pytest

from snapkeep.engine.repository import Repository
from snapkeep.engine.restore import restore
from snapkeep.engine.restore.content import find_node, read_content
from snapkeep.sources.accounts.base import Account, Domain, FtpAccount
from snapkeep.sources.components import (
    ALL_COMPONENTS,
    COMPONENTS,
    account_sources,
    backup_account,
    home_excludes,
)
from snapkeep.storage.memory import MemoryStore


@pytest.fixture
def account(tmp_path):
    home = tmp_path / "home" / "alice"
    for relative, text in {
        "public_html/index.html": "<h1>hi</h1>",
        "public_html/cache/page.html": "cached",
        "logs/a/b/deep.log": "log",
        "keep.log": "top",
        "Maildir/cur/1.msg": "mail",
    }.items():
        path = home / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "crontab").write_text("0 * * * * php cron.php\n")
    (etc / "alice.example.db").write_text("$ORIGIN alice.example.\n")
    (etc / "alice.pem").write_text("CERT")
    (etc / "other" / "alice.pem").parent.mkdir()
    (etc / "other" / "alice.pem").write_text("CERT2")
    (etc / "ftp.passwd").write_text("alice_ftp:x")
    return Account(
        "alice",
        str(home),
        package="gold",
        mail_root=str(home / "Maildir"),
        cron_file=str(etc / "crontab"),
        domains=(Domain("alice.example", str(etc / "alice.example.db")), Domain("parked.example")),
        certificates=(str(etc / "alice.pem"), str(etc / "other" / "alice.pem")),
        ftp_accounts=(FtpAccount("alice_ftp", str(home / "public_html")),),
        ftp_files=(str(etc / "ftp.passwd"),),
        excludes=("public_html/cache",),
    )


def walk(target):
    found = []
    for root, _dirs, files in os.walk(target):
        found += [os.path.relpath(os.path.join(root, name), target) for name in files]
    return sorted(found)


def test_everything_lands_in_the_fixed_layout(account, tmp_path):
    repository = Repository.init(MemoryStore(), password=None)
    sources = account_sources(account, ALL_COMPONENTS, 0, ["**/*.log", "/nowhere"])
    assert sources.names == [name for _bit, name in COMPONENTS]
    result = backup_account(repository, sources, job_id="job", tags=["manual"])
    assert result.failures == []
    assert not result.partial
    snapshot = result.snapshot
    assert snapshot.account == "alice"
    assert snapshot.job_id == "job"
    assert snapshot.tags == ["manual"]
    target = tmp_path / "restored"
    restore(repository, snapshot, str(target))
    assert walk(target) == [
        "certificates/2-alice.pem",
        "certificates/alice.pem",
        "config/account.json",
        "cron/crontab",
        "domains/alice.example.db",
        "domains/domains.json",
        "email/cur/1.msg",
        "ftp/accounts.json",
        "ftp/ftp.passwd",
        "homedir/public_html/index.html",
    ]
    # empty components are present as folders
    assert sorted(os.listdir(target)) == sorted(name for _bit, name in COMPONENTS)
    record = json.loads((target / "config/account.json").read_text())
    assert record["account"]["username"] == "alice"
    assert record["contains"] == 511
    assert Account.from_record(record["account"]) == account
    assert json.loads((target / "ftp/accounts.json").read_text())[0]["name"] == "alice_ftp"
    assert (target / "cron/crontab").read_text().startswith("0 * * * *")
    # a second run reuses unchanged files (not read again) and stores almost nothing new
    again = backup_account(
        repository, account_sources(account, ALL_COMPONENTS, 0, ["**/*.log"]), job_id="job"
    )
    assert again.snapshot.parent == snapshot.id
    assert again.snapshot.stats["unchanged_files"] == 7  # every file read from the file system
    node = find_node(repository, bytes.fromhex(again.snapshot.tree), "homedir/public_html/index.html")
    assert b"".join(read_content(repository, node)) == b"<h1>hi</h1>"
    repository.close()


@pytest.mark.parametrize(("bit", "name"), COMPONENTS)
def test_each_contains_bit_selects_its_component_only(account, bit, name):
    assert account_sources(account, bit, 0).names == [name]
    assert name not in account_sources(account, ALL_COMPONENTS & ~bit, 0).names


def test_relative_excludes_are_relative_to_the_home(account):
    assert home_excludes(account, ["cache/**", "/tmp/x", ""]) == [f"{account.home}/cache/**", "/tmp/x"]
    homedir = account_sources(account, 2, 0, ["*.tmp"]).components[0].items[0]
    assert f"{account.home}/*.tmp" in homedir.excludes
    assert f"{account.home}/public_html/cache" in homedir.excludes  # the account's own excludes
    assert account.mail_root in homedir.excludes  # mail is the email component's


def test_missing_sources_are_warnings_not_failures(tmp_path):
    ghost = Account("ghost", str(tmp_path / "nohome"), cron_file=str(tmp_path / "nocron"))
    repository = Repository.init(MemoryStore(), password=None)
    result = backup_account(repository, account_sources(ghost, 2 | 16, 0), job_id="j")
    assert result.failures == []
    assert result.partial
    assert result.snapshot.stats["warning_count"] == 2
    repository.close()
