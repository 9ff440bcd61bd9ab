"""The SFTP framing of ``sftp_openssh.OpenSshReader`` against a scripted server standing in for
``ssh``: short answers are asked again, EOF ends a range, status codes become paramiko-like errors,
answers in any order are matched to their requests, and listings are parsed with every length
checked (a hostile server's names cannot make the client read past an answer or allocate without
bound)."""

from __future__ import annotations

import io
import sys
import textwrap
from pathlib import Path

import paramiko
import pytest

from snapkeep.storage import sftp_openssh
from snapkeep.storage.sftp_openssh import OpenSshReader
from snapkeep.storage.sftp_session import host_key_of
from snapkeep.storage.sftp_settings import HostKey

#: A minimal SFTP v3 server on stdin/stdout serving one file, "/f", of CONTENT; it answers every
#: read with at most SHORT bytes, and the reads that arrive together in reverse order.
SERVER = textwrap.dedent(
    """
    import os, select, struct, sys
    CONTENT = bytes(range(256)) * 2000
    SHORT = int(os.environ.get("SHORT", "100000"))
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    def packet():
        head = inp.read(5)
        if len(head) < 5:
            sys.exit(0)
        length, kind = struct.unpack(">IB", head)
        return kind, inp.read(length - 1)
    def send(kind, body):
        out.write(struct.pack(">IB", len(body) + 1, kind) + body)
    def status(number, code, text=b"nope"):
        send(101, struct.pack(">II", number, code) + struct.pack(">I", len(text)) + text + b"\\0\\0\\0\\0")
    pending = []
    listed = False
    def name(text, mode, size):
        return struct.pack(">I", len(text)) + text + struct.pack(">I", 0) + struct.pack(">IQI", 5, size, mode)
    while True:
        kind, body = packet()
        if kind == 1:
            send(2, struct.pack(">I", 3)); out.flush(); continue
        number = struct.unpack_from(">I", body)[0]
        if kind == 3:
            size = struct.unpack_from(">I", body, 4)[0]
            path = body[8:8 + size]
            if path == b"/f":
                send(102, struct.pack(">I", number) + struct.pack(">I", 1) + b"h")
            elif path == b"/secret":
                status(number, 3, b"Permission denied")
            else:
                status(number, 2, b"No such file")
        elif kind == 5:
            offset, length = struct.unpack_from(">QI", body, 9)
            if offset >= len(CONTENT):
                pending.append((number, None))
            else:
                pending.append((number, CONTENT[offset:offset + min(length, SHORT)]))
            if select.select([inp], [], [], 0.01)[0]:
                continue  # more requests are coming: answer them together, last first
        elif kind == 11:
            size = struct.unpack_from(">I", body, 4)[0]
            path = body[8:8 + size]
            send(102, struct.pack(">II", number, len(path)) + path)
            listed = False
        elif kind == 12:
            handle = body[8:8 + struct.unpack_from(">I", body, 4)[0]]
            if listed:
                status(number, 1, b"EOF")
            elif handle == b"/d":
                entries = name(b".", 0o40755, 0) + name(b"a", 0o100644, 7) + name(b"sub", 0o40700, 4096)
                send(104, struct.pack(">II", number, 3) + entries)
            elif handle == b"/huge":  # a million names announced, none sent
                send(104, struct.pack(">II", number, 1000000))
            else:  # "/cut": a name that runs past the end of the answer
                send(104, struct.pack(">II", number, 1) + struct.pack(">I", 500) + b"ab")
            listed = True
        elif kind == 8:
            send(105, struct.pack(">I", number) + struct.pack(">IQ", 1, len(CONTENT)))
        elif kind == 4:
            for waiting, data in reversed(pending):
                if data is None: status(waiting, 1, b"EOF")
                else: send(103, struct.pack(">II", waiting, len(data)) + data)
            pending.clear()
            status(number, 0, b"ok")
        for waiting, data in reversed(pending):
            if data is None: status(waiting, 1, b"EOF")
            else: send(103, struct.pack(">II", waiting, len(data)) + data)
        pending.clear()
        out.flush()
    """
)
CONTENT = bytes(range(256)) * 2000


@pytest.fixture
def host_key() -> HostKey:
    return host_key_of(paramiko.Ed25519Key.from_private_key(io.StringIO(_key_text())))


def _key_text() -> str:
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()).decode()


def reader(tmp_path: Path, host_key: HostKey, monkeypatch: pytest.MonkeyPatch, short: int) -> OpenSshReader:
    script = tmp_path / "fake-ssh"
    script.write_text(f"#!{sys.executable}\n{SERVER}")
    script.chmod(0o700)
    monkeypatch.setenv("SHORT", str(short))
    return OpenSshReader(
        program=str(script),
        host="127.0.0.1",
        port=22,
        username="u",
        host_key=host_key,
        private_key=_key_text(),
        timeout=10.0,
    )


@pytest.mark.parametrize("short", [60_000, 300_000])
def test_ranges_short_answers_and_eof(
    tmp_path: Path, host_key: HostKey, monkeypatch: pytest.MonkeyPatch, short: int
) -> None:
    client = reader(tmp_path, host_key, monkeypatch, short)
    try:
        assert client.read("/f", 0, None) == CONTENT
        assert client.read("/f", 10, 700_000) == CONTENT[10:710_010]
        assert client.read("/f", 500_000, 1_000_000) == CONTENT[500_000:]
        assert client.read("/f", 600_000, 10) == b""
    finally:
        client.close()
    assert not client.alive()


def test_status_codes_become_paramiko_like_errors(
    tmp_path: Path, host_key: HostKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = reader(tmp_path, host_key, monkeypatch, 100_000)
    try:
        with pytest.raises(FileNotFoundError):
            client.read("/missing", 0, 10)
        with pytest.raises(PermissionError):
            client.read("/secret", 0, 10)
        assert client.read("/f", 0, 5) == CONTENT[:5]  # the session is still usable
    finally:
        client.close()


def test_listings_are_parsed_and_malformed_ones_refused(
    tmp_path: Path, host_key: HostKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = reader(tmp_path, host_key, monkeypatch, 100_000)
    try:
        listed = [(entry.filename, entry.st_mode, entry.st_size) for entry in client.listdir_attr("/d")]
        assert listed == [("a", 0o100644, 7), ("sub", 0o40700, 4096)]
        with pytest.raises(OSError, match="1000000 names in one READDIR"):
            client.listdir_attr("/huge")
        with pytest.raises(OSError, match="runs past its end"):
            client.listdir_attr("/cut")
        assert len(client.listdir_attr("/d")) == 2  # the session is still usable
    finally:
        client.close()


def test_a_folder_listed_without_end_is_refused(
    tmp_path: Path, host_key: HostKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sftp_openssh, "MAX_FOLDER_ENTRIES", 1)
    client = reader(tmp_path, host_key, monkeypatch, 100_000)
    try:
        with pytest.raises(OSError, match="more than 1 entries in /d"):
            client.listdir_attr("/d")
    finally:
        client.close()


def test_a_client_that_exits_at_once_is_an_eof(tmp_path: Path, host_key: HostKey) -> None:
    script = tmp_path / "fails"
    script.write_text("#!/bin/sh\nexit 255\n")
    script.chmod(0o700)
    with pytest.raises(EOFError):
        OpenSshReader(
            program=str(script),
            host="127.0.0.1",
            port=22,
            username="u",
            host_key=host_key,
            private_key=_key_text(),
            timeout=10.0,
        )
