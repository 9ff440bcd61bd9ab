"""Issue 14 item 2: one data directory, found the same way everywhere: --home, then SNAPKEEP_HOME,
then `home` in a config file (/etc/snapkeep/snapkeep.toml, ~/.config/snapkeep/snapkeep.toml), then
the default; a command that would create a new, empty home says so on stderr."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from snapkeep import home as home_module
from snapkeep.cli.main import cli


@pytest.fixture
def config_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    system, user = tmp_path / "etc.toml", tmp_path / "user.toml"
    monkeypatch.setattr(home_module, "CONFIG_FILES", (system, user))
    monkeypatch.delenv("SNAPKEEP_HOME", raising=False)
    return system, user


def test_the_first_config_file_naming_a_home_wins(config_files: tuple[Path, Path], tmp_path: Path) -> None:
    system, user = config_files
    assert home_module.configured_home() is None
    user.write_text(f'home = "{tmp_path / "user-home"}"\n')
    assert home_module.default_home() == tmp_path / "user-home"
    system.write_text(f'home = "{tmp_path / "system-home"}"\n')
    assert home_module.configured_home() == (tmp_path / "system-home", str(system))
    system.write_text("home = [broken\n")  # unreadable: skipped, the next one answers
    assert home_module.default_home() == tmp_path / "user-home"
    system.write_text('home = "relative/path"\n')  # not absolute: skipped
    assert home_module.default_home() == tmp_path / "user-home"


def test_the_environment_wins_over_the_files(
    config_files: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_files[0].write_text(f'home = "{tmp_path / "file-home"}"\n')
    monkeypatch.setenv("SNAPKEEP_HOME", str(tmp_path / "env-home"))
    assert home_module.default_home() == tmp_path / "env-home"


def test_a_new_empty_home_is_announced_on_stderr(config_files: tuple[Path, Path], tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    config_files[1].write_text(f'home = "{fresh}"\n')
    runner = CliRunner()
    first = runner.invoke(cli, ["jobs", "list"])
    assert first.exit_code == 0, first.output
    assert f"snapkeep: {fresh} holds no catalog yet" in first.stderr
    again = runner.invoke(cli, ["jobs", "list"])
    assert "holds no catalog yet" not in again.stderr
    assert (fresh / "catalog.db").exists()
