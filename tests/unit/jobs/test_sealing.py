"""``jobs.sealing``: the master key file and the sealed tokens the catalog stores instead of secrets."""

from __future__ import annotations

import base64
import os
import stat
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapkeep.errors import ConfigError
from snapkeep.jobs import sealing

PURPOSE = "destination/SFTP/password"


@pytest.fixture(autouse=True)
def no_configured_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(sealing.ENVIRONMENT, raising=False)


def test_round_trip_and_tokens_differ_each_time(tmp_path: Path) -> None:
    master = sealing.master_key(tmp_path)
    first, second = master.seal("s3cret!", PURPOSE), master.seal("s3cret!", PURPOSE)
    assert first != second, "a fresh nonce every time"
    for token in (first, second):
        assert token.startswith(f"sk-sealed:v1:{master.ident}:")
        assert "s3cret" not in token
        assert master.open(token, PURPOSE) == "s3cret!"
        assert sealing.open_value(token, PURPOSE) == "s3cret!"
    assert master.open(master.seal("", PURPOSE), PURPOSE) == ""
    assert master.open(master.seal("ünïcode ✓", PURPOSE), PURPOSE) == "ünïcode ✓"
    assert sealing.open_value("clear from an old catalog", PURPOSE) == "clear from an old catalog"


def test_master_key_file_is_private_made_once_and_kept(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        master = sealing.master_key(tmp_path / "home")
    finally:
        os.umask(old)
    path = tmp_path / "home" / "master.key"
    assert master.path == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(bytes.fromhex(path.read_text().strip())) == sealing.KEY_SIZE
    assert sealing.master_key(tmp_path / "home").key == master.key
    assert list((tmp_path / "home").glob(".*")) == [], "no temporary file left"
    with pytest.raises(ConfigError, match="there is no master key"):
        sealing.master_key(tmp_path / "other", create=False)


def test_two_first_uses_at_once_keep_one_key(tmp_path: Path) -> None:
    keys: list[bytes] = []
    start = threading.Barrier(8)

    def make() -> None:
        start.wait()
        keys.append(sealing.master_key(tmp_path).key)

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(keys)) == 1


def test_the_key_file_named_by_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configured = tmp_path / "elsewhere.key"
    monkeypatch.setenv(sealing.ENVIRONMENT, str(configured))
    with pytest.raises(ConfigError, match=f"{configured} .SNAPKEEP_MASTER_KEY_FILE. does not exist"):
        sealing.master_key(tmp_path / "home")  # a configured key is never made up
    configured.write_bytes(os.urandom(sealing.KEY_SIZE))  # raw bytes are accepted as well as hex
    master = sealing.master_key(tmp_path / "home")
    assert master.path == configured
    assert not (tmp_path / "home" / "master.key").exists()
    configured.write_text("too short")
    with pytest.raises(ConfigError, match=f"the master key {configured} must hold 32 bytes"):
        sealing.master_key(tmp_path / "home")


def test_a_changed_token_does_not_open(tmp_path: Path) -> None:
    master = sealing.master_key(tmp_path)
    token = master.seal("s3cret!", PURPOSE)
    prefix, body = token.rsplit(":", 1)
    raw = bytearray(base64.urlsafe_b64decode(body))
    for position in (0, sealing.NONCE_SIZE, len(raw) - 1):  # nonce, ciphertext, tag
        changed = bytearray(raw)
        changed[position] ^= 0x01
        forged = f"{prefix}:{base64.urlsafe_b64encode(bytes(changed)).decode()}"
        with pytest.raises(ConfigError, match=f"does not open with the master key {master.path}"):
            master.open(forged, PURPOSE)


def test_a_token_moved_to_another_field_does_not_open(tmp_path: Path) -> None:
    master = sealing.master_key(tmp_path)
    token = master.seal("s3cret!", PURPOSE)
    for other in ("destination/SFTP/passphrase", "destination/S3/secret_key", "settings/email/password"):
        with pytest.raises(ConfigError, match=f"{other}: the sealed value does not open"):
            master.open(token, other)


def test_the_wrong_master_key_names_the_key_file(tmp_path: Path) -> None:
    token = sealing.master_key(tmp_path / "one").seal("s3cret!", PURPOSE)
    other = sealing.master_key(tmp_path / "two")
    with pytest.raises(ConfigError, match=f"but the master key {other.path} is {other.ident}"):
        other.open(token, PURPOSE)
    # a key id no loaded key has: named, with the keys that are loaded and the variable to set
    unknown = sealing.MasterKey(os.urandom(sealing.KEY_SIZE), tmp_path / "lost.key")
    with pytest.raises(ConfigError, match=f"sealed with master key {unknown.ident}, which is not loaded"):
        sealing.open_value(unknown.seal("x", PURPOSE), PURPOSE)


def test_reseal_moves_a_token_to_another_key(tmp_path: Path) -> None:
    one, two = sealing.master_key(tmp_path / "one"), sealing.master_key(tmp_path / "two")
    token = one.seal("s3cret!", PURPOSE)
    moved = two.reseal(token, PURPOSE)
    assert moved.startswith(f"sk-sealed:v1:{two.ident}:")
    assert two.open(moved, PURPOSE) == "s3cret!"
    assert two.reseal(moved, PURPOSE) == moved, "a token of the key itself is kept"
    assert two.open(two.reseal("clear", PURPOSE), PURPOSE) == "clear"
    assert two.reseal("", PURPOSE) == ""


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("sk-sealed:v1:", "no key id"),
        ("sk-sealed:v1:zzzzzzzz:AAAA", "no key id"),
        ("sk-sealed:v1:0123abcd", "no key id"),
        ("sk-sealed:v1:0123abcd:", "not base64"),
        ("sk-sealed:v1:0123abcd:!!!!", "not base64"),
        ("sk-sealed:v1:0123abcd:AAA", "not base64"),
        ("sk-sealed:v1:0123abcd:AAAA", "too short"),
        ("sk-sealed:v1:0123abcd:" + "A" * sealing.MAX_TOKEN, "longer than"),
        ("sk-sealed:v1:0123abcd:ÄÄÄÄ", "not base64"),
    ],
)
def test_malformed_tokens_are_refused_cleanly(tmp_path: Path, token: str, problem: str) -> None:
    master = sealing.master_key(tmp_path)
    with pytest.raises(ConfigError, match=problem):
        master.open(token, PURPOSE)
    with pytest.raises(ConfigError, match=problem):
        sealing.open_value(token, PURPOSE)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_after_the_prefix_is_a_config_error(tail: str) -> None:
    """Hostile catalog values: only ConfigError comes out (no decoding error, no crash), and only a
    token made with the key opens."""
    master = sealing.MasterKey(b"k" * sealing.KEY_SIZE, Path("fixed.key"))
    with pytest.raises(ConfigError):
        master.open(sealing.PREFIX + tail, PURPOSE)
    with pytest.raises(ConfigError):
        sealing.open_value(sealing.PREFIX + tail, PURPOSE)


def test_an_oversized_secret_is_refused(tmp_path: Path) -> None:
    master = sealing.master_key(tmp_path)
    with pytest.raises(ConfigError, match="too long to seal"):
        master.seal("x" * (sealing.MAX_SECRET + 1), PURPOSE)
    biggest = master.seal("x" * sealing.MAX_SECRET, PURPOSE)
    assert len(biggest) <= sealing.MAX_TOKEN
    assert master.open(biggest, PURPOSE) == "x" * sealing.MAX_SECRET
