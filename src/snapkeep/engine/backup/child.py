"""A backup worker process (``backup.processes``): ``python -m snapkeep.engine.backup.child FD``,
where FD is its end of the socket pair the backing-up process gave it."""

from __future__ import annotations

import sys

from snapkeep.engine.backup.processes import run_worker

if __name__ == "__main__":
    sys.exit(run_worker(int(sys.argv[1])))
