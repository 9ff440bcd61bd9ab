"""The one route to a store: location strings to typed parameters, parameters to stores by kind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from snapkeep.errors import ConfigError, StorageError
from snapkeep.storage.local import LocalStore
from snapkeep.storage.locations import Credentials, open_location, parse_location, scheme_of
from snapkeep.storage.memory import MemoryStore
from snapkeep.storage.registry import (
    BACKENDS,
    LocalParams,
    MemoryParams,
    S3Params,
    SftpParams,
    StoreParams,
    forget_memory_store,
    open_store,
)


def test_plain_path_and_file_url_open_local_stores(tmp_path: Path) -> None:
    by_path = open_location(str(tmp_path / "plain"))
    by_url = open_location(f"file://{tmp_path}/url%20dir")
    assert isinstance(by_path, LocalStore)
    assert isinstance(by_url, LocalStore)
    assert by_path.root == tmp_path / "plain"
    assert by_url.root == tmp_path / "url dir"


def test_parameters_reach_the_backend(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="folder does not exist"):
        open_store(LocalParams(path=str(tmp_path / "absent"), create=False))


def test_memory_stores_are_shared_by_name() -> None:
    forget_memory_store("shared")
    first = open_location("memory://shared")
    first.store("config", b"c")
    assert isinstance(first, MemoryStore)
    assert open_store(MemoryParams(name="shared")).load("config") == b"c"
    assert not open_location("memory://other").exists("config")
    forget_memory_store("shared")
    assert not open_location("memory://shared").exists("config")
    forget_memory_store("shared")
    forget_memory_store("other")


def test_sftp_location_parses_into_parameters(tmp_path: Path) -> None:
    key_file = tmp_path / "id"
    key_file.write_text("KEY TEXT")
    credentials = Credentials(key_file=str(key_file), passphrase="phrase", fingerprint="SHA256:abc")
    params = parse_location("sftp://back%40up@example.org:2222//srv/jobs/5f", credentials)
    assert params == SftpParams(
        host="example.org",
        port=2222,
        username="back@up",
        path="/srv/jobs/5f",
        private_key="KEY TEXT",
        passphrase="phrase",
        fingerprint="SHA256:abc",
    )
    with_password = parse_location("sftp://u:p%2Fw@h/x", Credentials(password="ignored"))
    assert isinstance(with_password, SftpParams)
    assert with_password.password == "p/w"
    assert with_password.port == 22
    assert with_password.path == "/x"


def test_s3_locations_parse_into_parameters() -> None:
    credentials = Credentials(access_key="AK", secret_key="SK")
    plain = parse_location("s3+http://127.0.0.1:9000/bucket/jobs/5f", credentials)
    assert plain == S3Params(
        bucket="bucket", access_key="AK", secret_key="SK", endpoint="http://127.0.0.1:9000", path="jobs/5f"
    )
    secure = parse_location(
        "s3://s3.example.com/b", Credentials(access_key="AK", secret_key="SK", region="eu-1")
    )
    assert isinstance(secure, S3Params)
    assert (secure.endpoint, secure.path, secure.region) == ("https://s3.example.com", "", "eu-1")
    aws = parse_location("s3:///b/p", credentials)
    assert isinstance(aws, S3Params)
    assert aws.endpoint is None
    assert aws.region == "us-east-1"


def test_parameters_never_show_secrets() -> None:
    shown = repr(
        SftpParams(host="h", username="u", path="/p", password="PW1", private_key="KEY1", passphrase="PP1")
    )
    shown += repr(S3Params(bucket="b", access_key="AK", secret_key="SECRET1"))
    shown += repr(Credentials(password="PW2", passphrase="PP2", secret_key="SECRET2"))
    for secret in ("PW1", "KEY1", "PP1", "SECRET1", "PW2", "PP2", "SECRET2"):
        assert secret not in shown
    assert "AK" in shown


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("sftp://host/path", "needs a user"),
        ("sftp://backup@host/", "needs a path"),
        ("sftp://backup@host/path", "needs credentials"),
        ("s3://endpoint", "needs a bucket"),
        ("S3://endpoint/bucket", "needs credentials"),
    ],
)
def test_incomplete_remote_locations_name_what_is_missing(location: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_location(location)


def test_credentials_come_only_from_arguments(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key_file = tmp_path / "id"
    key_file.write_text("KEY")
    monkeypatch.setenv("SNAPKEEP_SFTP_KEY_FILE", str(key_file))
    monkeypatch.setenv("SNAPKEEP_SFTP_PASSWORD", "pw")
    monkeypatch.setenv("SNAPKEEP_S3_ACCESS_KEY", "AK")
    monkeypatch.setenv("SNAPKEEP_S3_SECRET_KEY", "SK")
    with pytest.raises(ConfigError, match="needs credentials"):
        parse_location("sftp://backup@host/path")
    with pytest.raises(ConfigError, match="needs credentials"):
        parse_location("s3://endpoint/bucket")


def test_unreadable_key_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"SFTP key file .*absent"):
        parse_location("sftp://u@h/p", Credentials(key_file=str(tmp_path / "absent")))


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("", "empty"),
        ("gopher://host/x", "unknown scheme 'gopher'"),
        ("memory://", "needs a name"),
        ("file://otherhost/x", "local path"),
    ],
)
def test_bad_locations(location: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_location(location)


def test_the_table_dispatches_by_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[StoreParams] = []

    def opener(params: SftpParams) -> MemoryStore:
        opened.append(params)
        return MemoryStore()

    monkeypatch.setitem(BACKENDS, "sftp", opener)
    assert isinstance(open_location("sftp://u@host/path", Credentials(password="pw")), MemoryStore)
    assert opened == [SftpParams(host="host", username="u", path="/path", password="pw")]


def test_a_kind_without_backend_is_a_config_error() -> None:
    class GopherParams(StoreParams):
        kind = "gopher"

    with pytest.raises(ConfigError, match="no storage backend for 'gopher'"):
        open_store(GopherParams())


def test_scheme_of() -> None:
    assert scheme_of("/var/backups") == ""
    assert scheme_of("relative/dir://odd") == ""
    assert scheme_of("MEMORY://x") == "memory"


def test_the_storage_package_imports_without_pytest() -> None:
    """The installed package must not need the test extra (pytest) at run time."""
    code = (
        "import sys, pkgutil, importlib\n"
        "sys.modules['pytest'] = None\n"  # any `import pytest` now raises ImportError
        "import snapkeep.storage as package\n"
        "for module in pkgutil.iter_modules(package.__path__):\n"
        "    importlib.import_module('snapkeep.storage.' + module.name)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
