"""Failpoints for crash tests: SIGKILL the process at a named point. Test-only.

The acceptance tests set `DOCKWRIGHT_FAILPOINT=NAME` on a daemon to simulate a crash (a power
loss or an OOM kill) right after a step's journal write. They then start a new daemon on the
same database and check that the operation is resumed or undone. With the variable unset, `reach`
does nothing. Never set it in production.

Names in use: `recreate.after_create`, `recreate.after_stop`, `recreate.after_rename_old`,
`recreate.after_rename_new`, `recreate.after_start`, `recreate.after_gate`.
"""

from __future__ import annotations

import os
import signal

ENVIRONMENT_VARIABLE = "DOCKWRIGHT_FAILPOINT"


def reach(name: str) -> None:
    """Kill this process with SIGKILL when `name` is the configured failpoint."""
    if os.environ.get(ENVIRONMENT_VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)
