"""``ftp://`` and ``ftps://`` locations parse into ``FtpParams``; bad ones name what is wrong."""

from __future__ import annotations

import pytest

from snapkeep.errors import ConfigError
from snapkeep.storage.locations import Credentials, parse_location
from snapkeep.storage.registry import FtpParams


def test_ftp_location_parses_into_parameters() -> None:
    params = parse_location("ftp://back%40up@ftp.example.org:2121/srv/jobs/5f", Credentials(password="pw"))
    assert params == FtpParams(
        host="ftp.example.org",
        port=2121,
        username="back@up",
        password="pw",
        path="/srv/jobs/5f",
    )
    assert "pw" not in repr(params)


def test_ftps_location_with_options() -> None:
    params = parse_location(
        "ftps://u:p%2Fw@h/x?ca_file=/etc/ssl/ca.pem&passive=0&verify=1&timeout=9",
        Credentials(password="ignored"),
    )
    assert isinstance(params, FtpParams)
    assert (params.tls, params.passive, params.verify, params.ca_file, params.timeout) == (
        True,
        False,
        True,
        "/etc/ssl/ca.pem",
        9.0,
    )
    assert (params.port, params.password) == (21, "p/w")


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("ftp://host/path", "ftp:// needs a user"),
        ("ftps://u@/path", "ftps:// needs a host"),
        ("ftp://u@host/", "needs a path on the server"),
        ("ftp://u@host/p?speed=9", "unknown option 'speed' (known: ca_file, verify, passive, timeout)"),
        ("ftp://u@host/p?verify=yes", "verify must be 1 or 0 (got 'yes')"),
        ("ftp://u@host/p?timeout=0", "timeout must be 1 to 3600 seconds (got '0')"),
    ],
)
def test_bad_ftp_locations_name_what_is_wrong(location: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_location(location, Credentials(password="pw"))


def test_a_password_in_the_url_is_masked_in_messages() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_location("ftp://u:secret-pw@host/p?verify=2")
    assert "secret-pw" not in str(caught.value)
