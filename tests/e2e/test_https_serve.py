"""``snapkeep serve`` over HTTPS: the real server, called with httpx verifying against the certificate.

``--tls-self-signed`` makes a certificate on the first start, prints its fingerprint, and keeps it
(the same fingerprint after a restart); ``--tls-cert/--tls-key`` serve an operator's certificate.
Plain HTTP to the TLS port gets no answer.
"""

from __future__ import annotations

import re
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from tests.e2e.conftest import SNAPKEEP, START_TIMEOUT, Instance, free_port, printed_token

from snapkeep.cli.tls import fingerprint, self_signed

FINGERPRINT = re.compile(r"TLS certificate SHA-256 fingerprint: ([0-9A-F:]{95})")


def start_tls(
    instance: Instance, log: Path, cafile: Path | None, *options: str
) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``serve OPTIONS`` on a free loopback port; wait until it answers HTTPS verified
    against ``cafile`` (the kept self-signed certificate when None)."""
    port = free_port()
    with log.open("ab") as output:
        process = subprocess.Popen(
            [str(SNAPKEEP), "serve", "--port", str(port), "--api-only", "--log-level", "warning", *options],
            env=instance.env(),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            pytest.fail(f"serve exited with {process.returncode}:\n{log.read_text()}")
        ca = cafile or instance.home / "tls" / "cert.pem"
        try:
            if ca.exists():
                context = ssl.create_default_context(cafile=str(ca))
                if httpx.get(f"https://127.0.0.1:{port}/openapi.json", verify=context, timeout=5).is_success:
                    return process, port
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            pytest.fail(f"serve did not answer HTTPS within {START_TIMEOUT} s:\n{log.read_text()}")
        time.sleep(0.1)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_self_signed_certificate_is_made_once_verified_and_pinned_by_its_fingerprint(tmp_path: Path) -> None:
    instance = Instance("sqlite", tmp_path / "home", None)
    log = tmp_path / "serve.log"
    process, port = start_tls(instance, log, None, "--tls-self-signed")
    try:
        output = log.read_text()
        cert = instance.home / "tls" / "cert.pem"
        assert "made a self-signed TLS certificate" in output
        printed = FINGERPRINT.search(output)
        assert printed is not None, output
        assert printed.group(1) == fingerprint(cert.read_bytes())
        assert f"API on https://127.0.0.1:{port}/" in output
        token = printed_token(output)
        assert token
        context = ssl.create_default_context(cafile=str(cert))
        for host in ("127.0.0.1", "localhost"):
            response = httpx.get(
                f"https://{host}:{port}/?api=1&function=listBackupJobs",
                headers={"Authorization": f"Bearer {token}"},
                verify=context,
            )
            assert response.status_code == 200
            assert response.json()["success"] == 1
        with pytest.raises(httpx.ConnectError):  # the system's CAs do not vouch for it
            httpx.get(f"https://127.0.0.1:{port}/openapi.json", timeout=10)
        with pytest.raises(httpx.HTTPError):  # no plain HTTP on the TLS port
            httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=10)
    finally:
        stop(process)

    log.write_text("")
    process, _ = start_tls(instance, log, None, "--tls-self-signed")
    try:
        output = log.read_text()
        assert "made a self-signed" not in output
        again = FINGERPRINT.search(output)
        assert again is not None
        assert again.group(1) == printed.group(1), "the kept certificate is reused"
    finally:
        stop(process)


def test_operator_certificate_and_key(tmp_path: Path) -> None:
    made = self_signed(tmp_path / "operator", "127.0.0.1")
    instance = Instance("sqlite", tmp_path / "home", None)
    log = tmp_path / "serve.log"
    process, port = start_tls(
        instance, log, made.cert, "--tls-cert", str(made.cert), "--tls-key", str(made.key)
    )
    try:
        output = log.read_text()
        assert f"TLS certificate SHA-256 fingerprint: {fingerprint(made.cert.read_bytes())}" in output
        assert not (instance.home / "tls").exists(), "an operator's certificate is not copied"
        token = printed_token(output)
        response = httpx.post(
            f"https://127.0.0.1:{port}/function/listBackupJobs",
            json={},
            headers={"Authorization": f"Bearer {token}"},
            verify=ssl.create_default_context(cafile=str(made.cert)),
        )
        assert response.json()["success"] == 1
    finally:
        stop(process)
