"""Each ``options`` value on a real Maildir: which mail files the email component keeps."""

from __future__ import annotations

import os

import pytest

from snapkeep.engine.repository import Repository
from snapkeep.engine.restore import restore
from snapkeep.errors import ValidationError
from snapkeep.sources.accounts.base import Account
from snapkeep.sources.components import account_sources, backup_account
from snapkeep.sources.mail import mail_excludes
from snapkeep.storage.memory import MemoryStore

FILES = [
    "cur/1.msg:2,S",
    "new/2.msg",
    "dovecot-uidlist",
    "dovecot.index",
    ".Sent/cur/3.msg:2,S",
    ".Sent/dovecot-uidlist",
    ".Trash/cur/4.msg",
    ".Trash.Old/new/5.msg",
    ".Junk/cur/6.msg",
    ".spam/new/7.msg",
    ".INBOX.Trash/cur/8.msg",
    ".Work.Projects/cur/9.msg",
]
FOLDERS = ["tmp", ".Sent/new", ".Sent/tmp", ".Work.Projects/new", ".Work.Projects/tmp"]


@pytest.fixture
def account(tmp_path):
    home = tmp_path / "alice"
    maildir = home / "Maildir"
    for name in FILES:
        path = maildir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
    for name in FOLDERS:
        (maildir / name).mkdir(parents=True, exist_ok=True)
    (home / "site.html").write_text("site")
    return Account("alice", str(home), mail_root=str(maildir))


def backed_up(account, options, tmp_path):
    repository = Repository.init(MemoryStore(), password=None)
    result = backup_account(repository, account_sources(account, 8 | 2, options), job_id="j")
    target = tmp_path / f"restore{options}"
    restore(repository, result.snapshot, str(target))
    repository.close()
    found = set()
    for root, dirs, files in os.walk(target / "email"):
        relative = os.path.relpath(root, target / "email")
        for name in files:
            found.add(os.path.normpath(os.path.join(relative, name)))
        for name in dirs:
            found.add(os.path.normpath(os.path.join(relative, name)) + "/")
    homedir = sorted(os.listdir(target / "homedir"))
    return found, homedir


@pytest.mark.parametrize("options", [0, 2, 6])
def test_contents_and_junk_included(account, options, tmp_path):
    found, homedir = backed_up(account, options, tmp_path)
    assert set(FILES) <= found
    assert homedir == ["site.html"]  # the mail root is the email component's, not the home dir's


def test_option_1_keeps_structure_without_messages(account, tmp_path):
    found, _ = backed_up(account, 1, tmp_path)
    assert {"dovecot-uidlist", "dovecot.index", ".Sent/dovecot-uidlist"} <= found
    assert {"cur/", "new/", "tmp/", ".Sent/cur/", ".Trash/cur/", ".Work.Projects/cur/"} <= found
    assert not [name for name in found if "msg" in name]


def test_option_4_drops_trash_spam_and_junk_folders(account, tmp_path):
    found, _ = backed_up(account, 4, tmp_path)
    assert {"cur/1.msg:2,S", "new/2.msg", ".Sent/cur/3.msg:2,S", ".Work.Projects/cur/9.msg"} <= found
    for junk in (".Trash/", ".Trash.Old/", ".Junk/", ".spam/", ".INBOX.Trash/"):
        assert junk not in found
        assert not [name for name in found if name.startswith(junk)]


def test_unknown_options_value_is_refused():
    with pytest.raises(ValidationError, match="options: must be one of 0, 1, 2, 4, 6"):
        mail_excludes("/home/a/Maildir", 3)
