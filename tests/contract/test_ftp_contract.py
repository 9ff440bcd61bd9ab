"""The store contract against a real vsftpd on 127.0.0.1, over FTP and over FTPS, plus what only FTP has.

One vsftpd per module and protocol (the ``ftpd`` fixture runs each test for both); every test gets a
fresh folder on it. vsftpd has no ``MLSD``: listings go through ``LIST``, and one class forces the
``NLST`` + ``SIZE`` fallback.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from tests.contract.store_contract import StoreContract

from servers import FtpServer
from snapkeep.storage.base import Store
from snapkeep.storage.ftp import FtpStore


def ftp_store(server: FtpServer, **options: object) -> FtpStore:
    settings: dict[str, object] = {
        "host": "127.0.0.1",
        "port": server.port,
        "username": server.username,
        "password": server.password,
        "path": server.folder_for(secrets.token_hex(6)),
        "tls": server.tls,
        "ca_file": str(server.ca_file) if server.ca_file else None,
        "timeout": 10.0,
    }
    settings.update(options)
    return FtpStore(**settings)  # type: ignore[arg-type]


class TestFtpStore(StoreContract):
    @pytest.fixture
    def store(self, ftpd: FtpServer) -> Iterator[Store]:
        with ftp_store(ftpd, threads=4) as store:
            yield store
