"""Real FTP test servers on free 127.0.0.1 ports: vsftpd (FTP and FTPS) and Pure-FTPd (``MLSD``).

``FtpServer`` runs Debian's ``/usr/sbin/vsftpd CONFIG`` with a throw-away configuration: the system
user ``snapkeep-ftp`` (created on first use, password set on every start) logs in by password and is
chrooted to the server's ``data`` folder. ``FtpServer(tls=True)`` requires explicit TLS with a fresh
self-signed certificate (``ca_file``). ``PureFtpServer`` runs Pure-FTPd, cPanel's default FTP server,
with one virtual user; it is the server that lists with ``MLSD``. Both need root (local logins, chroot).

Like the servers of ``servers.py`` they are context managers, can ``stop()``/``start()`` on the same
port and ``drop_connections()``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from servers import _Server, _wait_for_port, free_port

VSFTPD = Path("/usr/sbin/vsftpd")
FTP_USER = "snapkeep-ftp"
FTP_PASSWORD = "snapkeep-ftp-Pa55word"
#: The FTP test user's home: vsftpd changes into it before ``local_root``, so it must exist.
FTP_HOME = Path("/var/lib/snapkeep-ftp-test")


def vsftpd_available() -> bool:
    """vsftpd is installed and the tests run as root (it logs local users in through PAM)."""
    return VSFTPD.exists() and os.geteuid() == 0


def _ensure_ftp_user() -> None:
    """Create the ``snapkeep-ftp`` system user (root only), its empty home, and set its password."""
    if subprocess.run(["id", "-u", FTP_USER], capture_output=True, check=False).returncode != 0:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--home-dir", str(FTP_HOME), "--shell", "/bin/sh",
             FTP_USER],
            check=True,
            capture_output=True,
        )  # fmt: skip
    Path(pwd.getpwnam(FTP_USER).pw_dir).mkdir(mode=0o755, parents=True, exist_ok=True)
    subprocess.run(["chpasswd"], input=f"{FTP_USER}:{FTP_PASSWORD}\n".encode(), check=True)


def self_signed_certificate(folder: Path, name: str = "127.0.0.1") -> tuple[Path, Path]:
    """A fresh self-signed certificate for 127.0.0.1 and localhost: (certificate, key) PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_file, key_file = folder / f"{name}.crt", folder / f"{name}.key"
    certificate_file.write_bytes(certificate.public_bytes(Encoding.PEM))
    key_file.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    key_file.chmod(0o600)
    return certificate_file, key_file


class FtpServer(_Server):
    """vsftpd on 127.0.0.1:``port``; ``snapkeep-ftp`` logs in by password, chrooted to ``data``.

    With ``tls`` the server requires explicit TLS (``AUTH TLS``) for logins and data, with a fresh
    self-signed certificate (``ca_file``) and vsftpd's default ``require_ssl_reuse=YES``. Paths on the
    server are below the chroot: ``folder_for(name)`` is ``/name``, on disk ``data/name``.
    """

    def __init__(self, *, tls: bool = False) -> None:
        _ensure_ftp_user()
        self.port = free_port()
        self.tls = tls
        self.folder = Path(tempfile.mkdtemp(prefix="snapkeep-vsftpd-"))
        self.folder.chmod(0o755)
        self.data = self.folder / "data"
        self.data.mkdir()
        shutil.chown(self.data, user=FTP_USER)
        self.empty = self.folder / "empty"
        self.empty.mkdir(mode=0o755)
        self.username = FTP_USER
        self.password = FTP_PASSWORD
        self.ca_file: Path | None = None
        self.key_file: Path | None = None
        if tls:
            self.ca_file, self.key_file = self_signed_certificate(self.folder)

    def config(self) -> str:
        lines = [
            "listen=YES", "listen_ipv6=NO", "listen_address=127.0.0.1", f"listen_port={self.port}",
            "background=NO", "anonymous_enable=NO", "local_enable=YES", "write_enable=YES", "local_umask=022",
            "chroot_local_user=YES", "allow_writeable_chroot=YES", f"local_root={self.data}",
            f"secure_chroot_dir={self.empty}", "pam_service_name=vsftpd", "userlist_enable=NO",
            "seccomp_sandbox=NO", "isolate=NO", "isolate_network=NO", "pasv_enable=YES",
            "pasv_address=127.0.0.1", "port_enable=YES", "connect_from_port_20=NO", "xferlog_enable=NO",
            f"vsftpd_log_file={self.folder / 'vsftpd.log'}", "use_localtime=NO", "max_per_ip=0",
            "max_clients=0", "delay_failed_login=0", "max_login_fails=100",
        ]  # fmt: skip
        if self.tls:
            lines += [
                "ssl_enable=YES", f"rsa_cert_file={self.ca_file}", f"rsa_private_key_file={self.key_file}",
                "force_local_logins_ssl=YES", "force_local_data_ssl=YES", "ssl_tlsv1=YES", "ssl_sslv2=NO",
                "ssl_sslv3=NO", "ssl_ciphers=HIGH", "require_ssl_reuse=YES",
            ]  # fmt: skip
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        config = self.folder / "vsftpd.conf"
        config.write_text(self.config())
        log = self.folder / "vsftpd.out"
        self.process = subprocess.Popen(
            [str(VSFTPD), str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        _wait_for_port(self.port, self.process, log, b"220")

    def folder_for(self, name: str) -> str:
        """A fresh remote folder path (below the chroot) for one store; the store creates it."""
        return f"/{name}"

    def on_disk(self, remote: str) -> Path:
        """Where the remote path ``remote`` is on this machine."""
        return self.data / remote.lstrip("/")


#: Pure-FTPd's binaries, unpacked by ``scripts/test-servers.sh`` (the Debian package conflicts with vsftpd).
PURE_FTPD_ROOT = Path(os.environ.get("SNAPKEEP_TEST_PURE_FTPD_DIR", "/opt/snapkeep-test/pure-ftpd"))
PURE_FTPD = PURE_FTPD_ROOT / "usr/sbin/pure-ftpd"
PURE_PW = PURE_FTPD_ROOT / "usr/bin/pure-pw"


def pure_ftpd_available() -> bool:
    """Pure-FTPd (cPanel's default FTP server, with ``MLSD``) is installed and the tests run as root."""
    return PURE_FTPD.exists() and PURE_PW.exists() and os.geteuid() == 0


class PureFtpServer(_Server):
    """Pure-FTPd on 127.0.0.1:``port`` with one virtual user (``pure-pw``, a database of its own),
    chrooted to ``data``; it lists with ``MLSD``, which vsftpd lacks. Files belong to ``snapkeep-ftp``."""

    tls = False
    ca_file: Path | None = None

    def __init__(self) -> None:
        _ensure_ftp_user()
        account = pwd.getpwnam(FTP_USER)
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="snapkeep-pureftpd-"))
        self.folder.chmod(0o755)
        self.data = self.folder / "data"
        self.data.mkdir()
        shutil.chown(self.data, user=FTP_USER)
        self.username = "backup"
        self.password = FTP_PASSWORD
        # pure-pw hashes with argon2id at a cost that takes seconds per login on a busy machine; the
        # account line is written here with a SHA-512 crypt hash instead (pure-ftpd checks it by crypt()).
        hashed = (
            subprocess.run(
                ["openssl", "passwd", "-6", "-stdin"],
                input=self.password.encode(),
                check=True,
                capture_output=True,
            )
            .stdout.decode()
            .strip()
        )
        passwords = self.folder / "pureftpd.passwd"
        passwords.write_text(
            f"{self.username}:{hashed}:{account.pw_uid}:{account.pw_gid}::{self.data}/./" + ":" * 12 + "\n"
        )
        self.database = self.folder / "pureftpd.pdb"
        subprocess.run(
            [str(PURE_PW), "mkdb", str(self.database), "-f", str(passwords)], check=True, capture_output=True
        )

    def start(self) -> None:
        log = self.folder / "pure-ftpd.out"
        self.process = subprocess.Popen(
            [str(PURE_FTPD), "-S", f"127.0.0.1,{self.port}", "-l", f"puredb:{self.database}", "-E", "-A",
             "-P", "127.0.0.1", "-H"],
            stdin=subprocess.DEVNULL,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        _wait_for_port(self.port, self.process, log, b"220")

    def folder_for(self, name: str) -> str:
        """A fresh remote folder path (below the chroot) for one store; the store creates it."""
        return f"/{name}"

    def on_disk(self, remote: str) -> Path:
        """Where the remote path ``remote`` is on this machine."""
        return self.data / remote.lstrip("/")
