"""Reads and writes through the OpenSSH client (``storage.sftp_openssh``): used for key logins, refused for
any host key but the pinned one, replaced when dropped, and paramiko for password logins."""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest
from tests.conftest import require_server

from servers import SshServer, new_ed25519_key
from snapkeep.errors import HostKeyChangedError, ObjectNotFoundError
from snapkeep.storage.sftp import SftpStore
from snapkeep.storage.sftp_openssh import OpenSshReader
from snapkeep.storage.sftp_session import host_key_of


@pytest.fixture(autouse=True)
def _openssh_client() -> None:
    """The OpenSSH client these tests read through (a failure under CI when it is missing)."""
    require_server(shutil.which("ssh") is not None, "the OpenSSH client (ssh)")


def connect(server: SshServer, **options: object) -> SftpStore:
    settings: dict[str, object] = {
        "host": "127.0.0.1",
        "port": server.port,
        "username": server.username,
        "private_key": server.private_key,
        "path": server.folder_for(secrets.token_hex(6)),
        "fingerprint": server.fingerprint,
        "timeout": 5.0,
    }
    settings.update(options)
    return SftpStore(**settings)  # type: ignore[arg-type]


def test_key_logins_read_through_openssh(sshd: SshServer) -> None:
    data = bytes(range(256)) * 4000  # 1,024,000 bytes: several 255 KiB requests
    with connect(sshd) as store:
        store.store("data/ab/pack", data)
        assert store.load("data/ab/pack") == data
        assert store.load("data/ab/pack", 300_000, 400_000) == data[300_000:700_000]
        assert store.load("data/ab/pack", 1_000_000, 100_000) == data[1_000_000:]
        assert store.load("data/ab/pack", 2_000_000, 10) == b""
        with pytest.raises(ObjectNotFoundError):
            store.load("data/ab/missing")
        assert store._openssh.started >= 1


def test_password_logins_read_through_paramiko(sshd: SshServer) -> None:
    require_server(sshd.password is not None, "a password user for sshd (run the tests as root)")
    with connect(sshd, private_key=None, password=sshd.password) as store:
        store.store("data/ab/pack", b"by password")
        assert store.load("data/ab/pack") == b"by password"
        assert store._openssh.started == 0


def test_the_client_refuses_any_host_key_but_the_pinned_one(sshd: SshServer) -> None:
    stranger = host_key_of(paramiko.Ed25519Key.from_private_key(io.StringIO(new_ed25519_key())))
    with pytest.raises(EOFError):
        OpenSshReader(
            program=shutil.which("ssh") or "ssh",
            host="127.0.0.1",
            port=sshd.port,
            username=sshd.username,
            host_key=stranger,
            private_key=sshd.private_key,
            timeout=5.0,
        )


def test_a_dropped_reader_is_replaced(sshd: SshServer) -> None:
    with connect(sshd) as store:
        store.store("data/ab/one", b"before the drop")
        assert store.load("data/ab/one") == b"before the drop"
        started = store._openssh.started
        assert sshd.drop_connections() >= 1
        assert store.load("data/ab/one") == b"before the drop"
        assert store._openssh.started == started + 1


def test_a_changed_host_key_after_openssh_reads_is_named(sshd: SshServer) -> None:
    store = connect(sshd, fingerprint=None)
    try:
        store.store("config", b"pinned")
        assert store.load("config") == b"pinned"
        assert store._openssh.started == 1
        sshd.stop()
        sshd.new_host_key()
        sshd.start()
        with pytest.raises(HostKeyChangedError):
            store.load("config")
    finally:
        store.close()


def test_key_logins_write_through_openssh(sshd: SshServer) -> None:
    """Writes go through the client too: pipelined requests, folders made on the way, the object
    replaced atomically, exactly what paramiko reads back."""
    data = os.urandom(1_000_000)  # several 255 KiB requests, a chunk not a multiple of them
    with connect(sshd) as store:
        assert store.store_stream("data/cd/pack", [data[:300_000], b"", data[300_000:]]) == len(data)
        assert store._openssh.started == 1
        store.store("data/cd/pack", b"replaced")
        store._openssh.program = None  # read back through paramiko
        assert store.load("data/cd/pack") == b"replaced"
        assert [item.name for item in store.list("data/")] == ["data/cd/pack"]
    folder = Path(store.root) / "data" / "cd"
    assert sorted(path.name for path in folder.iterdir()) == ["pack"]  # no temporary left


def test_a_failing_source_through_openssh_leaves_nothing(sshd: SshServer) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"x" * 600_000
        raise ValueError("the source broke")

    with connect(sshd) as store:
        store.store("archives/kept", b"old")
        with pytest.raises(ValueError, match="the source broke"):
            store.store_stream("archives/kept", chunks())
        assert store.load("archives/kept") == b"old"
        store.store("archives/after", b"the session is still usable")
        assert store.load("archives/after") == b"the session is still usable"
        assert sorted(path.name for path in (Path(store.root) / "archives").iterdir()) == ["after", "kept"]


#: Run in a fresh interpreter: every call a store makes, then whether paramiko was ever imported.
_WITHOUT_PARAMIKO = """
import json, sys
from snapkeep.errors import HostKeyChangedError
from snapkeep.storage.sftp import SftpStore
settings = json.loads(sys.argv[1])
with SftpStore(**settings) as store:
    store.store("data/ab/cd/pack", b"x" * 300_000)
    store.store("keys/one", b"key")
    listed = sorted((item.name, item.size) for item in store.list())
    size = store.stat("data/ab/cd/pack").size
    data = store.load("data/ab/cd/pack", 10, 5)
    info = store.info()
    store.delete("keys/one")
    after = [item.name for item in store.list("keys/")]
    pinned = store.fingerprint
settings["fingerprint"] = "SHA256:" + "A" * 43
try:
    SftpStore(**settings).load("data/ab/cd/pack")
    refused = ""
except HostKeyChangedError as error:
    refused = str(error)
print(json.dumps({
    "paramiko": "paramiko" in sys.modules, "listed": listed, "size": size, "data": data.decode(),
    "usage": info.usage, "free": info.free, "after": after, "pinned": pinned, "refused": refused,
}))
"""


def test_a_key_login_does_everything_through_openssh_and_never_imports_paramiko(sshd: SshServer) -> None:
    """Writes, nested folders, listings, stats, reads, space, deletes and the host key pin (learnt
    with ssh-keyscan) without paramiko: 23 MiB a backup to SFTP no longer holds."""
    require_server(shutil.which("ssh-keyscan") is not None, "OpenSSH's ssh-keyscan")
    settings = {
        "host": "127.0.0.1",
        "port": sshd.port,
        "username": sshd.username,
        "private_key": sshd.private_key,
        "path": sshd.folder_for(secrets.token_hex(6)),
        "timeout": 5.0,
    }
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_PARAMIKO, json.dumps(settings)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["paramiko"] is False
    assert seen["listed"] == [["data/ab/cd/pack", 300_000], ["keys/one", 3]]
    assert (seen["size"], seen["data"], seen["after"]) == (300_000, "xxxxx", [])
    assert seen["usage"] == 300_003
    assert seen["free"] > 0
    assert seen["pinned"] == sshd.fingerprint, "the first key seen (ed25519, as paramiko's) is pinned"
    assert sshd.fingerprint in seen["refused"], "a pin no key matches is refused, naming the key offered"


def test_listings_and_stats_through_openssh_match_paramiko(sshd: SshServer) -> None:
    with connect(sshd) as store:
        for name, size in (("data/00/a", 10), ("data/00/b", 0), ("data/ff/c", 70_000), ("index/i", 5)):
            store.store(name, b"z" * size)
        Path(store.root, "data", ".tmp-hidden").write_bytes(b"never listed")
        answers = []
        for program in (store._openssh.program, None):
            store._openssh.program = program  # None: paramiko answers
            answers.append(
                (
                    sorted((item.name, item.size) for item in store.list()),
                    sorted(item.name for item in store.list("data/0")),
                    store.stat("data/ff/c"),
                    store.info().total,
                )
            )
        assert answers[0] == answers[1]
        assert answers[0][0] == [("data/00/a", 10), ("data/00/b", 0), ("data/ff/c", 70_000), ("index/i", 5)]
        assert answers[0][1] == ["data/00/a", "data/00/b"]
        with pytest.raises(ObjectNotFoundError):
            store.stat("data/00")  # a folder is not an object
