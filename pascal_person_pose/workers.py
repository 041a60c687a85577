"""Process pools whose workers never outlive the process that started them.

A ``ProcessPoolExecutor`` worker waits for work on a pipe that the worker itself also
holds open, so when its parent is killed (SIGKILL, the OOM killer) it never sees the end
of the pipe and lives on, holding memory and files. Each worker here runs a watchdog
thread that ends the worker once the parent is gone: its parent pid changed (the worker
was re-parented) or the parent no longer exists (covers start methods whose workers are
children of a helper process, such as forkserver).
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

WATCH_INTERVAL = 0.5  # seconds between two looks at the parent


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A ``ProcessPoolExecutor`` of ``workers`` processes that exit with their parent."""
    return ProcessPoolExecutor(max_workers=workers, initializer=_watch_parent,
                               initargs=(os.getpid(),))


def _watch_parent(parent: int) -> None:
    first_ppid = os.getppid()

    def watch() -> None:
        while os.getppid() == first_ppid and _alive(parent):
            time.sleep(WATCH_INTERVAL)
        os._exit(1)  # no cleanup to do: the parent, which owned the work, is gone

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # the pid now belongs to another user's process
        return False
    return True
