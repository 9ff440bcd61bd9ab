"""A masked secret is kept only for the endpoint it belongs to (attack report, HIGH/MEDIUM-5): a
caller who changes where a destination's secret goes must send the secret again."""

from __future__ import annotations

from typing import Any

import pytest

from snapkeep.api.dispatch import Api
from snapkeep.jobs import destinations
from snapkeep.jobs.catalog import Catalog
from snapkeep.jobs.models.destination import SECRET_MASK

SFTP = {
    "host": "backup.example.test",
    "port": 22,
    "username": "keeper",
    "password": "SFTPPASSWORD123",
    "path": "/backups",
}
S3 = {
    "bucket": "my-bucket",
    "region": "eu-west-1",
    "endpoint": "https://s3.example.test",
    "access_key": "AKIAEXAMPLE",
    "secret_key": "SUPERSECRETS3KEY",
    "path": "x",
}


def create(api: Api, kind: str, options: dict[str, Any]) -> dict[str, Any]:
    answer = api.call(
        "manageDestination", {"action": "create", "name": kind, "type": kind, "options": options}
    )
    assert answer["success"] == 1, answer["message"]
    return dict(answer["data"])


def secret_of(catalog: Catalog, ident: str, kind: str, option: str) -> str:
    with catalog.transaction(write=False) as tx:
        stored = tx.require("destinations", ident, "Destination")
    return str(destinations.open_options(kind, stored["options"])[option])


@pytest.mark.parametrize(
    ("kind", "options", "secret", "change"),
    [
        ("SFTP", SFTP, "password", {"host": "attacker.example.test"}),
        ("SFTP", SFTP, "password", {"port": "2222"}),
        ("SFTP", SFTP, "password", {"username": "root"}),
        ("S3", S3, "secret_key", {"endpoint": "https://attacker.example.test"}),
        ("S3", S3, "secret_key", {"bucket": "attacker-bucket"}),
        ("S3", S3, "secret_key", {"region": "us-east-2"}),
        ("S3", S3, "secret_key", {"access_key": "AKIAOTHER"}),
    ],
)
def test_retargeting_with_the_mask_is_refused(
    api: Api, catalog: Catalog, kind: str, options: dict[str, Any], secret: str, change: dict[str, Any]
) -> None:
    created = create(api, kind, options)
    before = catalog.dump()
    sent = {**created["options"], **change}
    sent.pop("fingerprint", None)
    answer = api.call("manageDestination", {"action": "modify", "_id": created["_id"], "options": sent})
    assert answer["success"] == 0
    (field,) = change
    assert f"options[{secret}]: must be given again when {field} changes" in answer["message"]
    assert options[secret] not in answer["message"]
    assert catalog.dump() == before, "nothing written"
    # with the secret given again, the change is allowed
    again = api.call(
        "manageDestination",
        {"action": "modify", "_id": created["_id"], "options": {**sent, secret: "a-new-secret"}},
    )
    assert again["success"] == 1, again["message"]
    assert again["data"]["options"][secret] == SECRET_MASK
    assert secret_of(catalog, created["_id"], kind, secret) == "a-new-secret"


def test_the_mask_keeps_the_secret_for_the_same_endpoint(api: Api, catalog: Catalog) -> None:
    sftp = create(api, "SFTP", SFTP)
    sent = {key: value for key, value in sftp["options"].items() if key != "fingerprint"}
    # the same endpoint written differently (the port as text, the default left out) is the same
    for options in ({**sent, "path": "/elsewhere", "port": "22"}, {**sent, "path": "/third"}):
        answer = api.call("manageDestination", {"action": "modify", "_id": sftp["_id"], "options": options})
        assert answer["success"] == 1, answer["message"]
        assert secret_of(catalog, sftp["_id"], "SFTP", "password") == SFTP["password"]
    without_port = {key: value for key, value in sent.items() if key != "port"}
    answer = api.call("manageDestination", {"action": "modify", "_id": sftp["_id"], "options": without_port})
    assert answer["success"] == 1, answer["message"]
    s3 = create(api, "S3", S3)
    answer = api.call(
        "manageDestination",
        {"action": "modify", "_id": s3["_id"], "options": {**s3["options"], "path": "other/prefix"}},
    )
    assert answer["success"] == 1, answer["message"]
    assert secret_of(catalog, s3["_id"], "S3", "secret_key") == S3["secret_key"]
    # fields outside the options (the name) never touch the secret
    renamed = api.call("manageDestination", {"action": "modify", "_id": s3["_id"], "name": "Renamed"})
    assert renamed["success"] == 1, renamed["message"]
    assert secret_of(catalog, s3["_id"], "S3", "secret_key") == S3["secret_key"]


def test_a_mask_sent_with_a_new_type_keeps_nothing(api: Api, catalog: Catalog) -> None:
    sftp = create(api, "SFTP", SFTP)
    before = catalog.dump()
    answer = api.call(
        "manageDestination",
        {
            "action": "modify",
            "_id": sftp["_id"],
            "type": "S3",
            "options": {**S3, "secret_key": SECRET_MASK},
        },
    )
    assert answer["success"] == 0
    assert "options[secret_key]: must be given again when the type changes" in answer["message"]
    assert catalog.dump() == before


def test_a_client_cannot_plant_a_sealed_value(api: Api, catalog: Catalog) -> None:
    """Text that looks like a sealed value is a secret like any other: it is sealed, not trusted."""
    s3 = create(api, "S3", S3)
    with catalog.transaction(write=False) as tx:
        token = tx.require("destinations", s3["_id"], "Destination")["options"]["secret_key"]
    planted = create(api, "S3", {**S3, "secret_key": token})
    assert secret_of(catalog, planted["_id"], "S3", "secret_key") == token
