"""``sftp_settings``: the private key check without paramiko, and choosing the host key to pin among
those a server offers."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from snapkeep.errors import HostKeyChangedError, StorageError
from snapkeep.storage.sftp_settings import HostKey, SftpSettings, check_private_key


def _text(key: object, form: PrivateFormat, passphrase: bytes | None = None) -> str:
    encryption = BestAvailableEncryption(passphrase) if passphrase else NoEncryption()
    return key.private_bytes(Encoding.PEM, form, encryption).decode()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("key", "form"),
    [
        (ed25519.Ed25519PrivateKey.generate(), PrivateFormat.OpenSSH),
        (ec.generate_private_key(ec.SECP256R1()), PrivateFormat.OpenSSH),
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), PrivateFormat.TraditionalOpenSSL),
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), PrivateFormat.PKCS8),
    ],
)
def test_openssh_and_pem_keys_are_accepted_with_or_without_their_passphrase(
    key: object, form: PrivateFormat
) -> None:
    check_private_key(_text(key, form), None)
    check_private_key(_text(key, form), "ignored: the key has none")
    locked = _text(key, form, b"secret")
    check_private_key(locked, "secret")
    with pytest.raises(StorageError, match="privatekey: the key is encrypted; give its passphrase"):
        check_private_key(locked, None)
    with pytest.raises(StorageError, match=r"privatekey: not a readable .*\(wrong passphrase"):
        check_private_key(locked, "wrong")


@pytest.mark.parametrize("text", ["", "not a key", "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END"])
def test_anything_else_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(StorageError, match=r"privatekey: not a readable RSA, Ed25519 or ECDSA private key"):
        SftpSettings(host="h", port=22, username="u", private_key=text)


def _key(name: str, seed: bytes) -> HostKey:
    return HostKey(name, len(name).to_bytes(4, "big") + name.encode() + seed)


def test_the_first_key_offered_is_pinned_and_a_pinned_key_is_found_among_those_offered() -> None:
    ed, rs = _key("ssh-ed25519", b"1"), _key("ssh-rsa", b"2")
    settings = SftpSettings(host="h", port=22, username="u", password="p")
    assert settings.choose_host_key([ed, rs]) == ed
    assert (settings.pinned, settings.host_key) == (ed.fingerprint, ed)
    assert settings.choose_host_key([rs, ed]) == ed  # the pinned key, wherever it comes

    pinned_rsa = SftpSettings(host="h", port=22, username="u", password="p", fingerprint=rs.fingerprint)
    assert pinned_rsa.choose_host_key([ed, rs]) == rs
    with pytest.raises(HostKeyChangedError) as refused:
        pinned_rsa.choose_host_key([_key("ssh-ed25519", b"3")])
    assert rs.fingerprint in str(refused.value)
    assert "ssh-ed25519" in str(refused.value)
    assert pinned_rsa.host_key == rs


def test_a_fingerprint_is_sha256_of_the_key_as_ssh_keygen_prints_it() -> None:
    key = _key("ssh-ed25519", b"x" * 32)
    assert key.fingerprint.startswith("SHA256:")
    assert not key.fingerprint.endswith("=")
    assert len(key.fingerprint) == len("SHA256:") + 43
