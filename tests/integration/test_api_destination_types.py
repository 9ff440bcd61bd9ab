"""Destination types over the API: FTP's options, JetBackup's names for SFTP and Local, refused cloud types.

No server is contacted here (creating a destination does not connect); runs against a real vsftpd are
in ``test_ftp_runs.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from snapkeep.jobs import destinations, sealing
from snapkeep.jobs.destinations import secret_purpose
from snapkeep.jobs.models.destination import SECRET_MASK
from snapkeep.storage.registry import FtpParams

FTP = {"host": "ftp.example.org", "username": "backup", "password": "ftp-secret-1", "path": "/backups"}
SFTP = {"host": "ssh.example.org", "username": "backup", "password": "ssh-secret-1", "path": "/srv/backups"}


def create(api: Any, kind: str, options: dict[str, Any]) -> dict[str, Any]:
    return api.call(
        "manageDestination", {"action": "create", "name": f"D {kind}", "type": kind, "options": options}
    )


def test_ftp_destination_defaults_masking_and_parameters(api: Any, catalog: Any) -> None:
    answer = create(api, "ftp", FTP)
    assert answer["success"] == 1, answer["message"]
    destination = answer["data"]
    assert destination["type"] == "FTP"
    assert destination["options"] == {
        **FTP,
        "password": SECRET_MASK,
        "port": 21,
        "tls": 0,
        "passive": 1,
        "verify": 1,
        "ca_file": "",
        "timeout": 30,
    }
    assert "ftp-secret-1" not in str(api.call("listDestinations", {})["data"])
    with catalog.transaction(write=False) as tx:
        stored = tx.get("destinations", destination["_id"])
    params = destinations.store_params(stored, "5f" * 12)
    assert isinstance(params, FtpParams)
    assert (params.host, params.port, params.username, params.password) == (
        "ftp.example.org",
        21,
        "backup",
        "ftp-secret-1",
    )
    assert (params.path, params.tls, params.passive, params.verify, params.ca_file) == (
        "/backups/" + "5f" * 12,
        False,
        True,
        True,
        None,
    )
    assert "ftp-secret-1" not in repr(params)


def test_ftps_options_and_a_relative_path(api: Any, catalog: Any) -> None:
    options = {
        **FTP,
        "path": "backups",
        "tls": 1,
        "passive": 0,
        "verify": 0,
        "ca_file": "/etc/ca.pem",
        "port": 990,
    }
    destination = create(api, "FTP", options)["data"]
    assert (
        destination["options"]["tls"],
        destination["options"]["passive"],
        destination["options"]["verify"],
    ) == (
        1,
        0,
        0,
    )
    with catalog.transaction(write=False) as tx:
        params = destinations.store_params(tx.get("destinations", destination["_id"]), "job")
    assert isinstance(params, FtpParams)
    assert (params.path, params.tls, params.passive, params.verify, params.ca_file, params.port) == (
        "backups/job",
        True,
        False,
        False,
        "/etc/ca.pem",
        990,
    )


def opened(kind: str, value: str) -> str:
    """A stored secret opened with the master key (docs/secrets.md); it must be sealed."""
    assert sealing.is_sealed(value), value
    return sealing.open_value(value, secret_purpose(kind, "password"))


def test_read_modify_write_keeps_the_ftp_password(api: Any, catalog: Any) -> None:
    destination = create(api, "FTP", FTP)["data"]
    fetched = api.call("getDestination", {"_id": destination["_id"]})["data"]
    changed = {**fetched["options"], "timeout": 5}
    answer = api.call(
        "manageDestination", {"action": "modify", "_id": destination["_id"], "options": changed}
    )
    assert answer["success"] == 1, answer["message"]
    with catalog.transaction(write=False) as tx:
        stored = tx.get("destinations", destination["_id"])
    assert opened("FTP", stored["options"]["password"]) == "ftp-secret-1"  # sealed at rest, unchanged
    assert stored["options"]["timeout"] == 5


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({**FTP, "path": "/backups\r\nDELE config"}, "options[path]: must not contain control characters"),
        ({**FTP, "username": "a\nb"}, "options[username]: must not contain control characters"),
        (
            {**FTP, "ca_file": "ca.pem"},
            "options[ca_file]: must be an absolute path starting with / (got 'ca.pem')",
        ),
        ({**FTP, "tls": "yes"}, "options[tls]: must be 1 or 0 (got 'yes')"),
        ({**FTP, "port": 70000}, "options[port]: must be at most 65535"),
        ({key: value for key, value in FTP.items() if key != "host"}, "options[host]: is required"),
        ({**FTP, "privatekey": "x"}, "options[privatekey]: unknown field"),
    ],
)
def test_bad_ftp_options_name_the_option(api: Any, options: dict[str, Any], message: str) -> None:
    answer = create(api, "FTP", options)
    assert answer["success"] == 0
    assert message in answer["message"]
    assert api.call("listDestinations", {})["data"]["total"] == 0, "nothing is written on failure"


@pytest.mark.parametrize(
    ("alias", "stored", "options"),
    [("SSH", "SFTP", SFTP), ("ssh", "SFTP", SFTP), ("Localv2", "Local", {"path": "/srv/b"})],
)
def test_jetbackup_type_names_are_stored_as_snapkeep_ones(
    api: Any, alias: str, stored: str, options: dict[str, Any]
) -> None:
    answer = create(api, alias, options)
    assert answer["success"] == 1, answer["message"]
    assert answer["data"]["type"] == stored
    ident = answer["data"]["_id"]
    assert api.call("getDestination", {"_id": ident})["data"]["type"] == stored
    assert api.call("listDestinations", {"find": {"type": stored}})["data"]["total"] == 1


def test_modify_with_the_alias_keeps_the_masked_secret(api: Any, catalog: Any) -> None:
    destination = create(api, "SSH", SFTP)["data"]
    fetched = api.call("getDestination", {"_id": destination["_id"]})["data"]
    options = {key: value for key, value in fetched["options"].items() if key != "fingerprint"}
    answer = api.call(
        "manageDestination",
        {"action": "modify", "_id": destination["_id"], "type": "SSH", "options": options},
    )
    assert answer["success"] == 1, answer["message"]
    with catalog.transaction(write=False) as tx:
        stored = tx.get("destinations", destination["_id"])["options"]["password"]
    assert opened("SFTP", stored) == "ssh-secret-1"  # sealed at rest, unchanged


@pytest.mark.parametrize(
    "kind",
    [
        "Google Drive",
        "GoogleDrive",
        "Dropbox",
        "DropBox",
        "OneDrive",
        "Box",
        "pCloud",
        "Backblaze",
        "S3 Compatible",
    ],
)
def test_cloud_types_are_refused_by_name(api: Any, kind: str) -> None:
    answer = create(api, kind, {"path": "/x"})
    assert answer["success"] == 0
    assert answer["message"] == (
        f"type: {kind!r} is a JetBackup destination type snapkeep does not support; "
        "use one of Local, SFTP, S3 or FTP"
    )


def test_an_unknown_type_lists_the_types(api: Any) -> None:
    answer = create(api, "Gopher", {"path": "/x"})
    assert answer["message"] == "type: must be one of Local, SFTP, S3 or FTP (got 'Gopher')"


def test_list_destination_types_lists_ftp(api: Any) -> None:
    types = {item["type"]: item for item in api.call("listDestinationTypes", {})["data"]["types"]}
    assert list(types) == ["Local", "SFTP", "S3", "FTP"]
    ftp = {option["name"]: option for option in types["FTP"]["options"]}
    assert ftp["password"]["secret"] == 1
    assert (ftp["host"]["required"], ftp["path"]["required"], ftp["port"]["required"]) == (1, 1, 0)
    assert set(ftp) == {
        "host",
        "port",
        "username",
        "password",
        "path",
        "tls",
        "passive",
        "verify",
        "ca_file",
        "timeout",
    }
    assert "FTPS" in types["FTP"]["description"]
