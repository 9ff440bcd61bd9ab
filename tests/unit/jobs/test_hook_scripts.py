"""The hook-script trust rule (docs/hooks.md): checked when a hook is saved and before every run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from snapkeep.errors import ValidationError
from snapkeep.jobs.codes import HookPosition, HookStage
from snapkeep.jobs.hook_scripts import UnsafeScript, open_script, verify_script
from snapkeep.jobs.hooks import HookContext, Verdict, run_stage
from snapkeep.jobs.models import HookFields
from snapkeep.jobs.models.base import validate

AS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not AS_ROOT, reason="changing a file's owner needs root (CI runs as root)")
NOBODY = 65534


def make_script(folder: Path, name: str = "hook.sh", body: str = "exit 0", mode: int = 0o755) -> Path:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(mode)
    return path


def save(script: str | Path) -> HookFields:
    return validate(HookFields, {"name": "h", "script": str(script), "position_type": 1, "position": 1})


def refused_at_save(script: str | Path) -> str:
    with pytest.raises(ValidationError) as caught:
        save(script)
    assert caught.value.field == "script"
    return str(caught.value)


def refused(script: str | Path) -> str:
    with pytest.raises(UnsafeScript) as caught:
        verify_script(str(script))
    return caught.value.reason


def test_a_root_owned_script_in_safe_folders_is_accepted(trusted_dir: Path) -> None:
    script = make_script(trusted_dir)
    assert save(script).script == str(script)
    assert verify_script(str(script)) == str(script)
    real, descriptor = open_script(str(script))
    try:
        assert real == str(script)
        assert os.fstat(descriptor).st_ino == script.stat().st_ino
    finally:
        os.close(descriptor)


@pytest.mark.parametrize(("mode", "who"), [(0o757, "others"), (0o775, "group"), (0o777, "group and others")])
def test_a_script_writable_by_group_or_others_is_refused(trusted_dir: Path, mode: int, who: str) -> None:
    script = make_script(trusted_dir, mode=mode)
    assert f"script: {script} is writable by {who} (mode 0{mode:o})" in refused_at_save(script)


@needs_root
def test_a_script_owned_by_another_user_is_refused(trusted_dir: Path) -> None:
    script = make_script(trusted_dir)
    os.chown(script, NOBODY, NOBODY)
    assert f"{script} is owned by uid {NOBODY}, not by root or the service's user" in refused_at_save(script)


@needs_root
def test_the_service_user_is_trusted_when_the_service_is_not_root(
    trusted_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = trusted_dir / "svc"
    folder.mkdir(mode=0o755)
    script = make_script(folder)
    os.chown(folder, NOBODY, NOBODY)
    os.chown(script, NOBODY, NOBODY)
    assert "owned by uid 65534" in refused(script)
    monkeypatch.setattr(os, "geteuid", lambda: NOBODY)  # the service running as "nobody"
    assert verify_script(str(script)) == str(script)
    os.chown(script, NOBODY + 1, NOBODY)
    assert f"owned by uid {NOBODY + 1}" in refused(script)


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("run.sh", "must be an absolute path starting with /"),
        ("/usr/../bin/true", "must not contain a '..' path component"),
        ("/usr/./bin/true", "must not contain a '.' path component"),
        ("/usr//bin/true", "must not contain an empty path component"),
        ("/usr/bin/", "must not contain an empty path component"),
        ("/usr/bin/tr\x00ue", "must not contain a NUL byte"),
        ("/nonexistent/x", "/nonexistent does not exist"),
        ("/usr/bin", "/usr/bin is a folder, not a script"),
        ("/etc/passwd", "/etc/passwd is not executable"),
    ],
)
def test_paths_that_are_not_plain_or_not_scripts_are_refused(path: str, problem: str) -> None:
    assert problem in refused_at_save(path)


def test_a_symbolic_link_to_a_good_script_is_refused(trusted_dir: Path) -> None:
    script = make_script(trusted_dir)
    link = trusted_dir / "link.sh"
    link.symlink_to(script)
    assert f"{link} is a symbolic link" in refused_at_save(link)


def test_every_parent_folder_must_be_safe(trusted_dir: Path, tmp_path: Path) -> None:
    inner = trusted_dir / "a" / "b"
    inner.mkdir(parents=True)
    script = make_script(inner)
    (trusted_dir / "a").chmod(0o777)
    assert f"folder {trusted_dir / 'a'} is writable by group and others" in refused(script)
    (trusted_dir / "a").chmod(0o775)
    assert f"folder {trusted_dir / 'a'} is writable by group" in refused(script)
    (trusted_dir / "a").chmod(0o755)
    assert verify_script(str(script)) == str(script)
    # sticky and root-owned is not enough: /tmp is never accepted on the way
    assert "folder /tmp is writable by group and others (mode 1777)" in refused(make_script(tmp_path))


@needs_root
def test_a_parent_folder_owned_by_another_user_is_refused(trusted_dir: Path) -> None:
    folder = trusted_dir / "theirs"
    folder.mkdir(mode=0o755)
    script = make_script(folder)
    os.chown(folder, NOBODY, NOBODY)
    assert f"folder {folder} is owned by uid {NOBODY}" in refused(script)


def test_folder_links_are_followed_and_every_folder_on_the_way_is_checked(trusted_dir: Path) -> None:
    real = trusted_dir / "real" / "bin"
    real.mkdir(parents=True)
    script = make_script(real)
    (trusted_dir / "via").symlink_to("real/bin")  # relative, like /bin -> usr/bin
    linked = trusted_dir / "via" / "hook.sh"
    assert verify_script(str(linked)) == str(script)
    (trusted_dir / "real").chmod(0o777)  # the link's target chain is checked too
    assert f"folder {trusted_dir / 'real'} is writable" in refused(linked)


def test_a_script_made_writable_after_saving_is_not_run(trusted_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    script = make_script(trusted_dir, body=f"touch {marker}")
    saved = save(script)
    script.chmod(0o777)
    hook = {"_id": "e" * 24, "name": "late", "timeout": 30, **saved.model_dump()}
    context = HookContext(position=HookPosition.BACKUP, stage=HookStage.PRE, job_id="a" * 24, log_id="c" * 24)
    outcome = run_stage([hook], context)
    assert not marker.exists()
    assert outcome.verdict is Verdict.FAILED
    assert outcome.status == 103
    assert outcome.alert
    reason = f"refused to run {script}: {script} is writable by group and others (mode 0777)"
    assert outcome.results[0].error == reason
    assert any(reason in text for _, text in outcome.log_lines)
    post = run_stage([{**hook, "position_type": 2}], HookContext(1, 2, "a" * 24, "c" * 24, status=100))
    assert post.verdict is Verdict.WARNING
    assert not marker.exists()
    script.chmod(0o755)
    assert run_stage([hook], context).verdict is Verdict.OK
    assert marker.exists()


def test_manage_hook_names_the_script_and_the_reason(api, trusted_dir: Path) -> None:
    script = make_script(trusted_dir, mode=0o777)
    fields = {"action": "create", "name": "h", "position_type": 1, "position": 1}
    answer = api.call("manageHook", {**fields, "script": str(script)})
    assert answer["success"] == 0
    assert f"script: {script} is writable by group and others (mode 0777)" in answer["message"]
    assert api.call("listHooks", {})["data"]["total"] == 0
    script.chmod(0o755)
    created = api.call("manageHook", {**fields, "script": str(script)})
    assert created["success"] == 1
    script.chmod(0o775)  # a modify re-checks the stored script
    answer = api.call("manageHook", {"action": "modify", "_id": created["data"]["_id"], "timeout": 60})
    assert answer["success"] == 0
    assert f"script: {script} is writable by group (mode 0775)" in answer["message"]
