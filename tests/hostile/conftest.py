"""Helpers of the hostile-input suite: run ``ppp`` in a child process where permissions
apply, and check that what it printed is exactly one error line.

Tests run as root in CI, and root ignores file permissions. The interpreter lives under
root's private home, so another user could not even start it; a ``ppp`` child therefore
keeps uid 0 but loses the capabilities that let root ignore permissions
(CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER), which is what makes an ordinary user
see "permission denied". :func:`as_nobody` runs a function in a forked child that really
is another user (uid 65534), for library calls whose modules are already imported.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534  # the unprivileged user of Debian and most Linux systems
_PR_CAPBSET_DROP = 24
_PERMISSION_OVERRIDES = (1, 2, 3)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER


def run_ppp(*args, permissions: bool = False, timeout: float = 120, **kwargs
            ) -> subprocess.CompletedProcess:
    """``ppp ARGS`` in a child process; ``permissions=True`` makes file permissions apply
    to it even when we are root."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.update(kwargs.pop("env", {}))
    code = "from pascal_person_pose.cli import main; main(prog_name=\"ppp\")"
    preexec = _drop_permission_overrides if permissions and os.geteuid() == 0 else None
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout,
                          preexec_fn=preexec, **kwargs)


def ppp_peak_rss(*args) -> tuple[subprocess.CompletedProcess, int]:
    """Run ``ppp ARGS`` in a child process; also return the child's peak RSS in bytes
    (VmHWM: ``ru_maxrss`` would count the RSS of the forking test process too, which
    carries over through exec)."""
    code = ("import re, sys\n"
            "from pascal_person_pose.cli import main\n"
            "try:\n"
            "    main(sys.argv[1:], prog_name='ppp')\n"
            "finally:\n"
            "    status = open('/proc/self/status').read()\n"
            "    peak = re.search(r'VmHWM:\\s+(\\d+)', status).group(1)\n"
            "    print(f'PEAK_RSS_KIB {peak}', file=sys.stderr)\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env,
                            capture_output=True, text=True, timeout=300)
    lines = result.stderr.splitlines()
    peak = int(lines[-1].split()[1]) * 1024
    result.stderr = "".join(f"{line}\n" for line in lines[:-1])
    return result, peak


def _drop_permission_overrides() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in _PERMISSION_OVERRIDES:
        if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def as_nobody(fn, *args):
    """``fn(*args)`` in a forked child running as uid 65534 (as ourselves when not root):
    returns (its result or the exception it raised, what it wrote on fd 1)."""
    result_r, result_w = os.pipe()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        try:
            os.close(result_r)
            os.close(out_r)
            os.dup2(out_w, 1)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            try:
                outcome = fn(*args)
            except BaseException as e:  # noqa: BLE001 - handed to the parent as the outcome
                outcome = e
            with os.fdopen(result_w, "wb") as f:
                pickle.dump(outcome, f)
        finally:
            os._exit(0)
    os.close(result_w)
    os.close(out_w)
    with os.fdopen(out_r, "rb") as f:
        written = f.read()
    with os.fdopen(result_r, "rb") as f:
        outcome = pickle.load(f)
    os.waitpid(pid, 0)
    return outcome, written


def assert_one_error_line(result: subprocess.CompletedProcess, *expected: str) -> str:
    """Exit code 2, nothing but one ``error:`` line on stderr holding every ``expected``."""
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]
