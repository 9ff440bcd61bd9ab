"""The README tour runs verbatim: the ``sh`` blocks of its "Tour" section, in one bash, in a fresh
directory that has the checkout's ``.venv`` (as a fresh clone has after ``make run``)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from tests.e2e.conftest import BIN, REPO, Instance, Server

SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.DOTALL | re.MULTILINE)


def tour_script(readme: str) -> str:
    """The concatenated ``sh`` code blocks of the README's "## Tour" section."""
    section = readme.split("\n## Tour\n", 1)[1]
    section = re.split(r"^## ", section, flags=re.MULTILINE)[0]
    blocks = SH_BLOCK.findall(section)
    assert blocks, "the README Tour section has no sh block"
    return "\n".join(blocks)


def test_readme_opens_with_the_two_commands() -> None:
    readme = (REPO / "README.md").read_text()
    block = readme.split("```sh\n", 1)[1].split("```", 1)[0]
    assert [line.split()[:2] for line in block.splitlines()] == [["make", "run"], ["make", "test"]]


@pytest.fixture(scope="module", params=["sqlite"])
def instance(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Instance:
    """A fresh clone uses the default SQLite catalog (the walks cover PostgreSQL)."""
    return Instance(request.param, tmp_path_factory.mktemp("tour") / "home", None)


@pytest.mark.slow
def test_readme_tour_runs_verbatim(instance: Instance, tmp_path: Path) -> None:
    script = tour_script((REPO / "README.md").read_text())
    checkout = tmp_path / "clone"
    checkout.mkdir()
    (checkout / ".venv").symlink_to(BIN.parent)
    env = instance.env()
    env.pop("SNAPKEEP_HOME")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"tour failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    assert "Website files" in done.stdout

    after = Instance(instance.backend, checkout / "var", instance.catalog_url)
    _, jobs = after.api("listBackupJobs", "")
    assert [job["name"] for job in jobs["data"]["jobs"]] == ["Website files"], "the copy was deleted"
    (job,) = jobs["data"]["jobs"]
    assert job["running"] == 1
    assert job["destination_name"] == ["Local disk"]
    assert [schedule["name"] for schedule in job["schedules"]] == ["Nightly"]
    _, groups = after.api("listQueueGroups", f"type=1&find[data._id]={job['_id']}")
    assert groups["data"]["total"] == 1


def curl_lines(readme: str) -> list[str]:
    """The curl commands of the README's "same calls over HTTP" block, continuation lines joined."""
    block = readme.split("The same calls over HTTP", 1)[1].split("```console\n", 1)[1].split("```", 1)[0]
    return [
        command.strip() for command in block.replace("\\\n", " ").splitlines() if command.startswith("curl")
    ]


def test_readme_curl_examples_work_as_printed(server: Server) -> None:
    """Issue 14 item 7: the curl lines run as printed (only the port is the test server's)."""
    _, destination = server.instance.api(
        "manageDestination", "action=create&name=c&type=Local&options[path]=%2Fsrv%2Fc"
    )
    code, job = server.instance.api(
        "manageBackupJob",
        "action=create&name=Curl%20job&type=2&contains=511&structure=1"
        f"&destination[0]={destination['data']['_id']}&include_list[0]=%2Fvar%2Fwww",
    )
    assert code == 0, job
    lines = curl_lines((REPO / "README.md").read_text())
    assert len(lines) == 3
    for line in lines:
        command = line.replace("http://127.0.0.1:3035", server.base_url)
        done = subprocess.run(
            ["bash", "-c", command],
            env={**server.instance.env(), "TOKEN": server.token, "JOB": job["data"]["_id"]},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, (line, done.stderr)
        assert '"success":1' in done.stdout.replace(" ", ""), (line, done.stdout[:300])
