"""HTTPS for ``snapkeep serve``: which addresses may go without it, and the self-signed certificate.

Bearer tokens must not cross a network in clear (attack report LOW-12), so ``serve`` refuses a
non-loopback address without TLS unless ``--insecure-http`` says the operator knows (a TLS proxy in
front, say). Loopback stays plain HTTP: the traffic never leaves the machine.

``--tls-self-signed`` makes a certificate on the first start and keeps it in the home
(``tls/cert.pem``, ``tls/key.pem``; the folder 0700 and the key 0600), so clients can pin it by its
SHA-256 fingerprint, which ``serve`` prints on every start. It names ``localhost``, ``127.0.0.1``,
``::1`` and the bind address; a kept certificate that does not name the bind address (the operator
changed ``--host``) is replaced, and ``serve`` says so.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from snapkeep.api.forward import der_fingerprint
from snapkeep.clock import SYSTEM, Clock

TLS_FOLDER = "tls"
CERT_NAME = "cert.pem"
KEY_NAME = "key.pem"
#: Ten years: a pinned self-signed certificate is trusted by its fingerprint, not its dates.
VALID_DAYS = 3650
LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``); any other name counts as not,
    since what it resolves to is not ours to know."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def fingerprint(cert_pem: bytes) -> str:
    """The SHA-256 fingerprint of a PEM certificate, as ``AB:CD:...`` (what browsers and
    ``openssl x509 -fingerprint -sha256`` show)."""
    return der_fingerprint(x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER))


@dataclass(frozen=True)
class SelfSigned:
    """The kept certificate and key, and whether this start made them."""

    cert: Path
    key: Path
    created: bool
    replaced: bool


def _names(host: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    addresses = {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
    try:
        addresses.add(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        if host.lower() != "localhost":
            names.append(x509.DNSName(host.lower()))
    names.extend(x509.IPAddress(address) for address in sorted(addresses, key=str))
    return names


def _covers(cert_pem: bytes, host: str) -> bool:
    """Whether the certificate names ``host`` (an unspecified address such as 0.0.0.0 needs none)."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if address is not None and address.is_unspecified:
        return True
    try:
        extension = x509.load_pem_x509_certificate(cert_pem).extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
    except (ValueError, x509.ExtensionNotFound):
        return False
    if address is not None:
        return address in extension.value.get_values_for_type(x509.IPAddress)
    return host.lower() in extension.value.get_values_for_type(x509.DNSName)


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600 from the start, replacing it atomically."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "wb") as output:
        output.write(data)
        output.flush()
        os.fsync(output.fileno())
    os.replace(temporary, path)


def self_signed(home: Path, host: str, clock: Clock = SYSTEM) -> SelfSigned:
    """The self-signed certificate for ``host`` kept in ``home/tls``, made when missing or when it
    does not name ``host``. The key is an ECDSA P-256 key (small and fast)."""
    folder = home / TLS_FOLDER
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    cert_path, key_path = folder / CERT_NAME, folder / KEY_NAME
    existed = cert_path.is_file() and key_path.is_file()
    if existed and _covers(cert_path.read_bytes(), host):
        os.chmod(key_path, 0o600)
        return SelfSigned(cert_path, key_path, created=False, replaced=False)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"snapkeep on {host}")])
    now = clock.now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(_names(host)), critical=False)
        # Its own trust anchor: CA with key usage and key identifiers, as strict verifiers (Python
        # 3.13's VERIFY_X509_STRICT) require of a certificate passed as the CA file.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_private(key_path, key_pem)
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return SelfSigned(cert_path, key_path, created=True, replaced=existed)
