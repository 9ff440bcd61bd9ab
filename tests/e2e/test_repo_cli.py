"""``snapkeep repo`` through the installed command, in a subprocess, as a disaster-recovery user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SNAPKEEP = Path(sys.executable).parent / "snapkeep"


def run(
    *args: str | Path, password: str | None = "pw-e2e", check: int | None = 0
) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "SNAPKEEP_PASSWORD"}
    if password is not None:
        env["SNAPKEEP_PASSWORD"] = password
    done = subprocess.run(
        [str(SNAPKEEP), "repo", *map(str, args)], capture_output=True, text=True, env=env, timeout=120
    )
    if check is not None:
        assert done.returncode == check, (args, done.returncode, done.stdout, done.stderr)
    return done


def repository_files(repo: Path) -> dict[str, int]:
    return {str(path.relative_to(repo)): path.stat().st_size for path in repo.rglob("*") if path.is_file()}


def make_source(root: Path) -> Path:
    source = root / "site"
    (source / "public_html" / "img").mkdir(parents=True)
    (source / "public_html" / "index.php").write_text("<?php echo 'hi'; ?>\n")
    (source / "public_html" / "img" / "logo.png").write_bytes(os.urandom(300_000))
    (source / "logs").mkdir()
    (source / "logs" / "access.log").write_text("GET /\n" * 1000)
    (source / "cache").mkdir()
    (source / "cache" / "tmp.bin").write_bytes(b"cached")
    os.symlink("public_html/index.php", source / "index-link")
    return source


def test_init_backup_snapshots_ls_restore(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    source = make_source(tmp_path)
    assert "encrypted repository" in run("init", repo).stdout

    first = json.loads(
        run("backup", repo, source, "--exclude", "**/cache", "--tag", "nightly", "--json").stdout
    )
    assert first["stats"]["files"] == 3
    assert first["tags"] == ["nightly"]
    (source / "public_html" / "index.php").write_text("<?php echo 'changed'; ?>\n")
    second = run("backup", repo, source, "--exclude", "**/cache").stdout
    assert "snapshot" in second
    assert "2 unchanged" in second

    listed = json.loads(run("snapshots", repo, "--json").stdout)
    assert listed[0]["id"] == first["id"]
    assert len(listed) == 2
    assert "2 snapshots" in run("snapshots", repo).stdout

    paths = run("ls", repo, first["id"][:8], str(source)).stdout.splitlines()
    assert f"{source}/public_html/img/logo.png" in paths
    assert not any("cache" in path for path in paths)
    long_listing = run("ls", repo, "latest", f"{source}/index-link", "--long").stdout
    assert long_listing.startswith("lrwxrwxrwx ")  # as `ls -l` shows it, with the link's target
    assert long_listing.rstrip().endswith("index-link -> public_html/index.php")

    target = tmp_path / "restored"
    restored = run("restore", repo, "latest", target, "--json")
    assert json.loads(restored.stdout)["failures"] == []
    copy = Path(str(target) + str(source))
    assert (copy / "public_html" / "index.php").read_text() == "<?php echo 'changed'; ?>\n"
    assert (copy / "public_html" / "img" / "logo.png").read_bytes() == (
        source / "public_html" / "img" / "logo.png"
    ).read_bytes()
    assert os.readlink(copy / "index-link") == "public_html/index.php"

    old = tmp_path / "old"
    run("restore", repo, first["id"][:10], old, "--include", f"{source}/public_html/index.php")
    old_copy = Path(str(old) + str(source))
    assert (old_copy / "public_html" / "index.php").read_text() == "<?php echo 'hi'; ?>\n"
    assert sorted(os.listdir(old_copy)) == ["public_html"]


def test_wrong_password_fails_clearly_and_writes_nothing(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    source = make_source(tmp_path)
    run("init", repo)
    run("backup", repo, source)
    before = repository_files(repo)
    for command in (
        ["backup", repo, source],
        ["snapshots", repo],
        ["restore", repo, "latest", tmp_path / "t"],
    ):
        done = run(*command, password="not the password", check=7)
        assert "wrong password" in done.stderr
    missing = run("snapshots", repo, password=None, check=7)
    assert "password is required" in missing.stderr
    assert repository_files(repo) == before
    assert not (tmp_path / "t").exists()


def test_password_file_and_plain_repository(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    repo = tmp_path / "repo"
    source = make_source(tmp_path)
    run("init", repo, "--password-file", secret, password=None)
    run("backup", repo, source, "--password-file", secret, password=None)
    assert (
        len(json.loads(run("snapshots", repo, "--password-file", secret, "--json", password=None).stdout))
        == 1
    )
    plain = tmp_path / "plain"
    run("init", plain, "--no-encryption", password=None)
    run("backup", plain, source, password=None)
    assert "1 snapshot\n" in run("snapshots", plain, password=None).stdout
    refused = run("init", tmp_path / "nopass", password=None, check=2)
    assert "password is needed" in refused.stderr


def test_unknown_snapshot_and_damaged_file_exit_non_zero(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    source = make_source(tmp_path)
    run("init", repo, "--no-encryption", password=None)
    run("backup", repo, source, password=None)
    assert run("ls", repo, "ffffffff", password=None, check=None).returncode != 0
    # Plain repository, incompressible logo: its bytes are stored verbatim in a pack. Damage them.
    logo = (source / "public_html" / "img" / "logo.png").read_bytes()
    for pack in (path for path in (repo / "data").rglob("*") if path.is_file()):
        data = bytearray(pack.read_bytes())
        where = data.find(logo[1000:1064])
        if where >= 0:
            data[where + 10] ^= 0xFF
            pack.write_bytes(bytes(data))
            break
    else:
        raise AssertionError("the logo's bytes are in no pack")
    done = run("restore", repo, "latest", tmp_path / "out", password=None, check=3)
    assert "logo.png" in done.stderr
    assert "FAILED" in done.stdout
    copy = Path(str(tmp_path / "out") + str(source))
    assert not (copy / "public_html" / "img" / "logo.png").exists()
    assert (copy / "public_html" / "index.php").read_text() == "<?php echo 'hi'; ?>\n"


def test_repository_from_option_or_environment(tmp_path: Path) -> None:
    """restic's habits: ``-r/--repo`` before or after the command, ``$SNAPKEEP_REPOSITORY``, and the
    positional PATH still works; an explicit location given twice with different values is refused."""
    repo = tmp_path / "repo"
    other = tmp_path / "other"
    source = make_source(tmp_path)
    run("-r", repo, "init")
    run("init", other)
    run("backup", "--repo", repo, source, "--tag", "opt")
    run(f"--repo={other}", "backup", source, "--tag", "other")
    mine = json.loads(run("snapshots", "-r", repo, "--json").stdout)
    assert [snap["tags"] for snap in mine] == [["opt"]]

    env = {key: value for key, value in os.environ.items() if key != "SNAPKEEP_PASSWORD"}
    env |= {"SNAPKEEP_PASSWORD": "pw-e2e", "SNAPKEEP_REPOSITORY": str(repo)}

    def with_env(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SNAPKEEP), "repo", *map(str, args)], capture_output=True, text=True, env=env, timeout=120
        )

    listed = with_env("ls", "latest", "--json")
    assert listed.returncode == 0, listed.stderr
    paths = [json.loads(line)["path"] for line in listed.stdout.splitlines()]
    assert any(path.endswith("public_html/index.php") for path in paths)
    # a first argument that is a repository wins over the environment
    theirs = with_env("snapshots", other, "--json")
    assert [snap["tags"] for snap in json.loads(theirs.stdout)] == [["other"]]
    # so does -r
    assert [s["tags"] for s in json.loads(with_env("-r", other, "snapshots", "--json").stdout)] == [["other"]]
    assert with_env("repair", "index").returncode == 0
    assert with_env("check").returncode == 0

    twice = run("-r", repo, "snapshots", other, check=2)
    assert "given twice" in twice.stderr
    assert str(other) in twice.stderr
    same = json.loads(run("-r", repo, "snapshots", repo, "--json").stdout)
    assert len(same) == 1
