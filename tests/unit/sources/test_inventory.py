"""The inventory provider: a TOML file of accounts, validated with errors naming account and field."""

from __future__ import annotations

import pytest

from snapkeep.errors import ConfigError, NotFoundError
from snapkeep.sources.accounts import open_provider
from snapkeep.sources.accounts.base import Account, Database, DatabaseUser, Domain
from snapkeep.sources.accounts.inventory import parse_inventory

GOOD = """
[[account]]
username = "bob"
home = "/nonexistent/bob"
suspended = true
disk_usage = 10
inodes = 2

[[account]]
username = "alice"
home = "/home/alice/"
owner = "res1"
package = "gold"
tags = ["vip"]
disk_usage = 5
inodes = 1
mail_root = "/home/alice/Maildir"
cron_file = "/var/spool/cron/crontabs/alice"
certificates = ["/etc/ssl/alice.pem"]
excludes = ["cache/**"]
[[account.databases]]
engine = "mariadb"
name = "alice_wp"
[[account.database_users]]
engine = "mariadb"
name = "alice_wp"
host = "localhost"
[[account.domains]]
name = "alice.example"
zone_file = "/var/named/alice.example.db"
[[account.ftp_accounts]]
name = "alice_ftp"
directory = "/home/alice/public_html"
"""


def test_parses_every_field_sorted_by_username(tmp_path):
    path = tmp_path / "accounts.toml"
    path.write_text(GOOD)
    provider = open_provider("inventory", path=str(path))
    accounts = provider.list_accounts()
    assert [account.username for account in accounts] == ["alice", "bob"]
    alice = provider.get_account("alice")
    assert alice.home == "/home/alice"
    assert alice.databases == (Database("mariadb", "alice_wp"),)
    assert alice.database_users == (DatabaseUser("mariadb", "alice_wp", "localhost"),)
    assert alice.domains == (Domain("alice.example", "/var/named/alice.example.db"),)
    assert alice.ftp_accounts[0].directory == "/home/alice/public_html"
    assert alice.tags == ("vip",)
    assert alice.excludes == ("cache/**",)
    assert Account.from_record(alice.to_record()) == alice
    assert accounts[1].suspended is True
    with pytest.raises(NotFoundError, match="Account not found: carol"):
        provider.get_account("carol")


def test_disk_usage_is_measured_when_left_out(tmp_path):
    home = tmp_path / "h"
    (home / "sub").mkdir(parents=True)
    (home / "sub" / "f").write_bytes(b"x" * 1000)
    (home / "g").write_bytes(b"y" * 24)
    (account,) = parse_inventory(f'[[account]]\nusername = "a"\nhome = "{home}"\n')
    assert account.disk_usage == 1024
    assert account.inodes == 4  # home, sub, f, g


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[account]]\nhome = "/h"', r"account\[0\].username: required"),
        ('[[account]]\nusername = "a b"\nhome = "/h"', r"account\[0\].username"),
        ('[[account]]\nusername = "a"\nhome = "h"', r"account\[0\] \(a\).home: required, an absolute path"),
        (
            '[[account]]\nusername = "a"\nhome = "/h"\ncolour = 1',
            r"account\[0\] \(a\): unknown field 'colour'",
        ),
        (
            '[[account]]\nusername = "a"\nhome = "/h"\nsuspended = "yes"',
            r"\(a\).suspended: must be true or false",
        ),
        (
            '[[account]]\nusername = "a"\nhome = "/h"\ndisk_usage = -1',
            r"\(a\).disk_usage: must be a non-negative",
        ),
        ('[[account]]\nusername = "a"\nhome = "/h"\ntags = [1]', r"\(a\).tags: must be a list"),
        (
            '[[account]]\nusername = "a"\nhome = "/h"\ncertificates = ["x.pem"]',
            r"\(a\).certificates: 'x.pem'",
        ),
        (
            '[[account]]\nusername = "a"\nhome = "/h"\n[[account.databases]]\nengine = "oracle"\nname = "x"',
            r"\(a\).databases: engine 'oracle' is not one of mariadb, postgresql",
        ),
        (
            '[[account]]\nusername = "a"\nhome = "/h"\n[[account.databases]]\nengine = "mariadb"',
            r"\(a\).databases\[0\].name: required",
        ),
        (
            '[[account]]\nusername = "a"\nhome = "/h"\n[[account.domains]]\nname = "d"\nzone = "x"',
            r"\(a\).domains\[0\]: unknown field 'zone'",
        ),
        (
            '[[account]]\nusername = "a"\nhome = "/h"\n[[account]]\nusername = "a"\nhome = "/i"',
            "username given twice",
        ),
        ("[[account]\n", "not valid TOML"),
        ("accounts = []", "unknown top-level key 'accounts'"),
    ],
)
def test_invalid_inventories_name_the_account_and_field(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_inventory(text, measure=False)


def test_unreadable_file_and_unknown_provider(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        open_provider("inventory", path=str(tmp_path / "missing.toml")).list_accounts()
    with pytest.raises(ConfigError, match="unknown account provider 'cpanel'"):
        open_provider("cpanel")
