"""The import contract of DESIGN.md section 1, enforced.

Runs import-linter's contracts from pyproject.toml, and checks in a fresh interpreter that importing
the engine and storage layers does not pull in the web framework, SQLAlchemy, pydantic or click.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_linter_contracts_hold() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    declared = (ROOT / "pyproject.toml").read_text().count("[[tool.importlinter.contracts]]")
    assert f"Contracts: {declared} kept, 0 broken" in result.stdout


def test_engine_and_storage_import_without_heavy_libraries() -> None:
    code = (
        "import sys, pkgutil, importlib\n"
        "import snapkeep.storage, snapkeep.engine\n"
        "for package in (snapkeep.storage, snapkeep.engine):\n"
        "    for info in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "heavy = {'fastapi', 'sqlalchemy', 'pydantic', 'starlette', 'uvicorn', 'click', 'rich'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout
