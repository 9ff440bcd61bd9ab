"""Master keys wrapped by Argon2id or scrypt in JSON key files."""

from __future__ import annotations

import json

import pytest

from snapkeep.engine.repository import keys
from snapkeep.errors import RepositoryError, WrongPasswordError

FAST_ARGON2 = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}
FAST_SCRYPT = {"n": 2**10, "r": 8, "p": 1}


@pytest.mark.parametrize(("kdf", "params"), [("argon2id", FAST_ARGON2), ("scrypt", FAST_SCRYPT)])
def test_wrap_unwrap_round_trip_and_wrong_password(kdf: str, params: dict[str, int]) -> None:
    master = keys.MasterKey.generate()
    data = keys.wrap(master, "correct horse", kdf, kdf_params=params)
    document = json.loads(data)
    assert document["kdf"] == kdf
    assert document["kdf_params"]["salt"]
    assert master.id_key.hex() not in data.decode()
    assert keys.unwrap(data, "correct horse") == master
    with pytest.raises(WrongPasswordError, match="wrong password for the repository at /backups/x"):
        keys.unwrap(data, "battery staple", location="/backups/x")
    with pytest.raises(WrongPasswordError, match="password is required"):
        keys.unwrap(data, None)


def test_parameters_in_the_file_are_used_not_the_defaults() -> None:
    master = keys.MasterKey.generate()
    data = keys.wrap(master, "pw", "argon2id", kdf_params=FAST_ARGON2)
    assert json.loads(data)["kdf_params"]["memory_cost"] == 8
    assert keys.unwrap(data, "pw") == master


def test_plain_key_file_needs_no_password() -> None:
    master = keys.MasterKey.generate()
    data = keys.wrap(master, None)
    assert keys.is_plain(data)
    assert keys.unwrap(data, None) == master
    assert keys.unwrap(data, "ignored") == master


def test_repr_never_shows_the_keys() -> None:
    master = keys.MasterKey.generate()
    assert master.id_key.hex() not in repr(master)
    assert repr(master) == "MasterKey()"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"not json", "not valid JSON"),
        (b"[]", "JSON object"),
        (b'{"version": 9}', "unsupported version 9"),
        (b'{"version": 1, "kdf": "md5"}', "unknown key derivation"),
        (b'{"version": 1, "kdf": "none", "master": "!!"}', "not valid base64"),
        (b'{"version": 1, "kdf": "none", "master": "AAAA"}', "64 bytes"),
        (b'{"version": 1, "kdf": "argon2id", "kdf_params": {"salt": "AAAA"}, "wrapped": "AAAA"}', "missing"),
    ],
)
def test_malformed_key_files_are_named(data: bytes, problem: str) -> None:
    with pytest.raises(RepositoryError, match=problem):
        keys.unwrap(data, "pw")


def test_unknown_kdf_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown key derivation"):
        keys.wrap(keys.MasterKey.generate(), "pw", "pbkdf1")
