"""A restore worker process (``restore.processes``): ``python -m snapkeep.engine.restore.child FD``,
where FD is its end of the socket pair the planning process gave it."""

from __future__ import annotations

import sys

from snapkeep.engine.restore.processes import run_worker

if __name__ == "__main__":
    sys.exit(run_worker(int(sys.argv[1])))
