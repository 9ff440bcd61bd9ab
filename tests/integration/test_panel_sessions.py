"""The web panel's door (docs/panel.md): passwords (Argon2id), sessions in an HttpOnly cookie that
the API accepts only with the session's CSRF header, sign out, expiry, the failed-auth throttle, and
``GET /`` sending a browser to the panel. No browser here: the FastAPI app in process."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from snapkeep.api.auth import CSRF_HEADER, SESSION_COOKIE
from snapkeep.api.http import create_app
from snapkeep.api.throttle import AuthThrottle
from snapkeep.cli.main import cli
from snapkeep.jobs import users

PASSWORD = "correct horse battery"


@pytest.fixture
def client(catalog: Any) -> TestClient:
    return TestClient(create_app(catalog, throttle=AuthThrottle(limit=5, window=60)), follow_redirects=False)


def make_user(api: Any, name: str = "alice", password: str = PASSWORD) -> dict[str, Any]:
    answer = api.call(
        "manageUser",
        {"action": "create", "name": name, "role": "account", "account": name, "password": password},
    )
    assert answer["success"] == 1, answer
    return dict(answer["data"])


def sign_in(client: TestClient, **fields: str) -> Any:
    return client.post("/ui/session", json=fields)


def call(client: TestClient, function: str, csrf: str | None, **params: Any) -> Any:
    headers = {} if csrf is None else {CSRF_HEADER: csrf}
    return client.post("/", json={"function": function, **params}, headers=headers)


def stored_hash(catalog: Any, name: str) -> str:
    with catalog.transaction(write=False) as tx:
        return users.password_hash_of(tx, name)[1]


def test_passwords_are_stored_as_argon2id_and_never_come_back(api: Any, catalog: Any) -> None:
    user = make_user(api)
    assert user["password"] == users.MASKED
    assert PASSWORD not in str(catalog.dump())
    hashed = stored_hash(catalog, "alice")
    assert hashed.startswith("$argon2id$")
    assert users.verify_password(hashed, PASSWORD)
    assert not users.verify_password(hashed, PASSWORD + "x")
    # the mask (or nothing) sent back keeps the stored hash; a new one replaces it
    kept = api.call("manageUser", {"action": "modify", "_id": user["_id"], "password": users.MASKED})
    assert kept["success"] == 1
    assert stored_hash(catalog, "alice") == hashed
    short = api.call("manageUser", {"action": "modify", "_id": user["_id"], "password": "short"})
    assert short["success"] == 0
    assert short["message"].startswith("password: must be at least 8"), short
    assert stored_hash(catalog, "alice") == hashed, "nothing written on a refused call"
    listed = api.call("listUsers", {})["data"]["users"]
    assert {u["name"]: u["password"] for u in listed} == {"root": "", "alice": users.MASKED}


def test_user_passwd_sets_root_s_password_from_a_file(tmp_path: Any) -> None:
    from snapkeep.jobs.catalog import Catalog

    home = tmp_path / "home"
    Catalog.open(home).close()
    secret = tmp_path / "pw"
    secret.write_text("root password 1\n")
    command = ["--home", str(home), "user", "passwd", "root", "--password-file", str(secret)]
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 0, result.output
    catalog = Catalog.open(home)
    try:
        assert users.verify_password(stored_hash(catalog, "root"), "root password 1")
        secret.write_text("short\n")
        refused = CliRunner().invoke(cli, command)
        assert refused.exit_code != 0
        assert "at least 8 characters" in refused.output
        assert users.verify_password(stored_hash(catalog, "root"), "root password 1")
        assert CliRunner().invoke(cli, [*command[:5], "--remove"]).exit_code == 0
        assert stored_hash(catalog, "root") != ""
        assert not users.verify_password(stored_hash(catalog, "root"), "root password 1")
    finally:
        catalog.close()


def test_a_session_reaches_the_api_only_with_its_csrf_header(api: Any, client: TestClient) -> None:
    make_user(api)
    signed = sign_in(client, name="alice", password=PASSWORD)
    assert signed.status_code == 200, signed.text
    cookie = signed.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=alice:")
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/"):
        assert attribute.lower() in cookie.lower(), cookie
    assert "secure" not in cookie.lower(), "plain HTTP (loopback): no Secure flag"
    csrf = signed.json()["data"]["csrf"]
    assert signed.json()["data"]["user"]["name"] == "alice"
    assert "password" not in signed.json()["data"]["user"]

    ok = call(client, "listBackups", csrf)
    assert ok.status_code == 200
    assert ok.json()["success"] == 1, ok.text
    # the same dispatcher and permission rules: an account owner may not list users
    assert call(client, "listUsers", csrf).json()["message"] == "permission denied: listUsers"
    missing = call(client, "listBackups", None)
    assert missing.status_code == 403
    assert CSRF_HEADER in missing.json()["message"]
    wrong = call(client, "listBackups", csrf[:-1] + ("0" if csrf[-1] != "0" else "1"))
    assert wrong.status_code == 403
    assert wrong.json()["success"] == 0
    # a reloaded page gets its CSRF secret back with the cookie alone
    again = client.get("/ui/session")
    assert again.status_code == 200
    assert again.json()["data"]["csrf"] == csrf

    assert client.delete("/ui/session").status_code == 403, "signing out needs the CSRF header too"
    out = client.delete("/ui/session", headers={CSRF_HEADER: csrf})
    assert out.status_code == 200, out.text
    client.cookies.set(SESSION_COOKIE, cookie.split(";")[0].split("=", 1)[1])  # a copy kept by an attacker
    after = call(client, "listBackups", csrf)
    assert after.status_code == 401
    assert after.json()["success"] == 0
    assert client.get("/ui/session").status_code == 401


def test_sessions_expire_when_idle_and_at_their_lifetime(api: Any, catalog: Any, client: TestClient) -> None:
    make_user(api)
    csrf = sign_in(client, name="alice", password=PASSWORD).json()["data"]["csrf"]
    clock = catalog.clock
    clock.sleep(users.SESSION_IDLE.total_seconds() - 60)
    assert call(client, "listBackups", csrf).json()["success"] == 1, "used within the idle limit"
    clock.sleep(users.SESSION_IDLE.total_seconds() + 1)
    assert call(client, "listBackups", csrf).status_code == 401, "idle too long"

    csrf = sign_in(client, name="alice", password=PASSWORD).json()["data"]["csrf"]
    step = datetime.timedelta(minutes=20)
    elapsed = datetime.timedelta(0)
    while elapsed + step < users.SESSION_LIFETIME:
        clock.sleep(step.total_seconds())
        elapsed += step
        assert call(client, "listBackups", csrf).status_code == 200
    clock.sleep(step.total_seconds())
    assert call(client, "listBackups", csrf).status_code == 401, "past its absolute lifetime"

    # ended sessions are removed at the next sign-in: the table does not grow with every one
    sign_in(client, name="alice", password=PASSWORD)
    kinds = [token["kind"] for token in api.call("listTokens", {})["data"]["tokens"]]
    assert kinds == ["session"]


def test_tokens_and_sessions_do_not_stand_in_for_each_other(
    api: Any, catalog: Any, client: TestClient
) -> None:
    make_user(api)
    token = catalog.create_token("alice")
    signed = sign_in(client, token=token)
    assert signed.status_code == 200
    assert signed.json()["data"]["user"]["name"] == "alice"
    session = client.cookies[SESSION_COOKIE]
    bearer = client.post(
        "/", json={"function": "listBackups"}, headers={"Authorization": f"Bearer {session}"}
    )
    assert bearer.status_code == 401, "a session is not a bearer token"
    client.cookies.set(SESSION_COOKIE, token)
    as_cookie = call(client, "listBackups", users.csrf_secret(token))
    assert as_cookie.status_code == 401, "an API token is not a session cookie"
    kinds = {t["kind"] for t in api.call("listTokens", {})["data"]["tokens"]}
    assert kinds == {"api", "session"}


def test_failed_sign_ins_are_throttled(api: Any, client: TestClient) -> None:
    make_user(api)
    for attempt in range(5):
        wrong = sign_in(client, name="alice" if attempt % 2 else "nobody", password="not the password")
        assert wrong.status_code == 401, wrong.text
        assert wrong.json()["message"] == "Authentication failed: wrong user name, password or token"
        assert SESSION_COOKIE not in wrong.headers.get("set-cookie", "")
    refused = sign_in(client, name="alice", password=PASSWORD)
    assert refused.status_code == 429
    assert "Retry-After" in refused.headers
    assert sign_in(client, name="alice").status_code == 429
    assert (
        client.post("/ui/session", content=b"[1]", headers={"Content-Type": "application/json"}).status_code
        == 429
    )


def test_a_bad_sign_in_body_is_refused_naming_the_shape(client: TestClient) -> None:
    json_type = {"Content-Type": "application/json"}
    for body in (b"not json", b"[]", b'{"name": 5}'):
        answer = client.post("/ui/session", content=body, headers=json_type)
        assert answer.status_code == 400
        assert '{"name", "password"}' in answer.json()["message"]


def test_a_plain_visit_to_slash_goes_to_the_panel(client: TestClient) -> None:
    visit = client.get("/")
    assert visit.status_code == 307
    assert visit.headers["location"] == "/ui/"
    assert client.get("/ui").headers["location"] == "/ui/"
    page = client.get("/ui/")
    assert page.status_code == 200
    assert "<main" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/ui/static/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/ui/static/../__init__.py").status_code == 404
    # API calls keep their envelope and status
    assert client.get("/?api=1&function=listBackupJobs").status_code == 401
    assert client.get("/", headers={"Authorization": "Bearer x:y"}).status_code == 401


def test_a_cross_site_form_cannot_sign_in(api: Any, client: TestClient) -> None:
    make_user(api)
    body = f'{{"name": "alice", "password": "{PASSWORD}", "x": "="}}'
    for content_type in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ):
        answer = client.post("/ui/session", content=body.encode(), headers={"Content-Type": content_type})
        assert answer.status_code == 415
        assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")


def test_the_cookie_is_secure_under_https(api: Any, catalog: Any) -> None:
    make_user(api)
    client = TestClient(create_app(catalog), base_url="https://testserver")
    signed = sign_in(client, name="alice", password=PASSWORD)
    assert signed.status_code == 200
    assert "; secure" in signed.headers["set-cookie"].lower()
