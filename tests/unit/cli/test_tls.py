"""``serve``'s transport choice and the self-signed certificate kept in the home (no socket bound)."""

from __future__ import annotations

import ipaddress
import socket
import stat
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from snapkeep.cli.main import cli
from snapkeep.cli.serve_cmd import advertised_url, choose_transport
from snapkeep.cli.tls import fingerprint, is_loopback, self_signed

# Never bound: these tests check that serve refuses (or would allow) the address before binding.
ANY = "0.0.0.0"  # noqa: S104


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.5.6.7", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        (ANY, False),
        ("::", False),
        ("192.0.2.10", False),
        ("backup.example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_self_signed_certificate_is_kept_private_names_the_host_and_is_reused(tmp_path: Path) -> None:
    made = self_signed(tmp_path, "192.0.2.10")
    assert made.created
    assert not made.replaced
    assert stat.S_IMODE((tmp_path / "tls").stat().st_mode) == 0o700
    assert stat.S_IMODE(made.key.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(made.cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
        ipaddress.ip_address("192.0.2.10"),
    }
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    expected = cert.fingerprint(hashes.SHA256()).hex().upper()
    assert fingerprint(made.cert.read_bytes()).replace(":", "") == expected

    again = self_signed(tmp_path, "192.0.2.10")
    assert not again.created
    assert again.cert.read_bytes() == made.cert.read_bytes()
    assert not self_signed(tmp_path, ANY).created, "an unspecified address needs no name"

    other = self_signed(tmp_path, "backup.example.com")
    assert other.created
    assert other.replaced
    cert = x509.load_pem_x509_certificate(other.cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "backup.example.com" in names.get_values_for_type(x509.DNSName)


def test_loopback_stays_plain_http_and_says_so(tmp_path: Path) -> None:
    said: list[str] = []
    transport = choose_transport(tmp_path, "127.0.0.1", None, None, False, False, said.append)
    assert transport.scheme == "http"
    assert said == [
        "plain HTTP on 127.0.0.1 (loopback only); use --tls-cert/--tls-key or --tls-self-signed "
        "for other addresses"
    ]


def test_non_loopback_without_tls_is_refused_unless_insecure_http(tmp_path: Path) -> None:
    with pytest.raises(click.UsageError, match=r"refusing plain HTTP on 0\.0\.0\.0.*--tls-self-signed"):
        choose_transport(tmp_path, ANY, None, None, False, False, print)
    said: list[str] = []
    transport = choose_transport(tmp_path, ANY, None, None, False, True, said.append)
    assert transport.scheme == "http"
    assert said[0].startswith("WARNING: plain HTTP on 0.0.0.0 (--insecure-http)")


def test_self_signed_transport_prints_the_fingerprint(tmp_path: Path) -> None:
    said: list[str] = []
    transport = choose_transport(tmp_path, "192.0.2.10", None, None, True, False, said.append)
    assert transport.scheme == "https"
    assert transport.cert == tmp_path / "tls" / "cert.pem"
    assert said[-1] == f"TLS certificate SHA-256 fingerprint: {fingerprint(transport.cert.read_bytes())}"
    assert transport.fingerprint == fingerprint(transport.cert.read_bytes())  # recorded for the nodes


def test_the_advertised_address_is_the_listening_one_or_the_option(tmp_path: Path) -> None:
    plain = choose_transport(tmp_path, "127.0.0.1", None, None, False, False, print)
    assert advertised_url(None, "127.0.0.1", 3035, plain) == "http://127.0.0.1:3035"
    assert advertised_url(None, "::1", 3035, plain) == "http://[::1]:3035"
    assert advertised_url(None, "0.0.0.0", 8443, plain) == f"http://{socket.gethostname()}:8443"  # noqa: S104
    assert advertised_url("https://backup-2.example:443/", ANY, 8443, plain) == "https://backup-2.example:443"
    with pytest.raises(click.BadParameter, match="without a path or query"):
        advertised_url("https://backup-2.example/api", ANY, 8443, plain)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--host", ANY], f"refusing plain HTTP on {ANY}"),
        (["--tls-cert", "{cert}"], "--tls-cert and --tls-key go together"),
        (["--tls-self-signed", "--tls-cert", "{cert}", "--tls-key", "{key}"], "do not give --tls-cert"),
        (["--tls-self-signed", "--insecure-http"], "--insecure-http contradicts"),
        (["--tls-cert", "{key}", "--tls-key", "{key}"], "not a PEM certificate"),
    ],
)
def test_serve_exits_2_before_binding_on_bad_transport_options(
    tmp_path: Path, options: list[str], message: str
) -> None:
    made = self_signed(tmp_path / "certs", "127.0.0.1")
    filled = [option.format(cert=made.cert, key=made.key) for option in options]
    result = CliRunner().invoke(cli, ["--home", str(tmp_path / "home"), "serve", "--port", "1", *filled])
    assert result.exit_code == 2, result.output
    assert message in result.output
