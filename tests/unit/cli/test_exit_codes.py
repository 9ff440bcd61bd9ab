"""The exit code of ``snapkeep run``, ``restore`` and ``runs execute``: 0 for a Completed run, 1 otherwise."""

from __future__ import annotations

import pytest

from snapkeep.cli.run_cmd import exit_with
from snapkeep.jobs.codes import QueueStatus


@pytest.mark.parametrize(
    ("status", "code"),
    [(QueueStatus.COMPLETED, 0), (QueueStatus.PARTIAL, 1), (QueueStatus.FAILED, 1), (QueueStatus.ABORTED, 1)],
)
def test_a_runs_final_status_is_the_commands_exit_code(status: QueueStatus, code: int) -> None:
    with pytest.raises(SystemExit) as ended:
        exit_with(status)
    assert ended.value.code == code
