"""Child processes that die with the process that started them, however it dies (SIGKILL included).

The dev stack starts its servers (Azurite, the Cosmos emulator, the Functions host of `make run`) in their own
session, so a terminal's Ctrl-C or hang-up reaches only the Python parent, which then stops them in order. When the
parent cannot do that (it is SIGKILLed by a CI timeout or `kill -9`), the servers would keep running and hold their
ports. popen() ties a child to its parent:

- Linux, called from the main thread: prctl(PR_SET_PDEATHSIG, SIGTERM) in the child before exec, so the kernel sends
  it SIGTERM when the parent dies. The kernel ties the signal to the *thread* that forked, so this is used only on
  the main thread, which lives as long as the process.
- Elsewhere (another thread, or no prctl: macOS, BSD): one watchdog process per parent, started on first use. The
  parent tells it on a pipe which process groups to guard; when the pipe reaches end-of-file (the parent exited or
  was killed), it sends SIGTERM to every group still guarded and SIGKILL to those left after GRACE seconds.

Either way the child gets SIGTERM, so it shuts down as on a normal stop (the Cosmos emulator saves its data file).
A child stopped normally is released (release(pid)), so the watchdog never signals a process id reused later.
"""
from __future__ import annotations

import atexit
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Optional

PR_SET_PDEATHSIG = 1
GRACE = 30.0  # seconds the watchdog waits after SIGTERM before SIGKILL


def _load_prctl() -> Optional[Callable[..., int]]:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


_PRCTL = _load_prctl()


def _death_signal_preexec(prctl: Callable[..., int], parent: int) -> Callable[[], None]:
    sig = int(signal.SIGTERM)

    def preexec() -> None:  # runs in the child between fork and exec: no imports, no locks
        prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the death signal was armed
            os._exit(1)

    return preexec


def uses_death_signal() -> bool:
    """Whether popen() called from this thread ties children by the kernel's death signal (else the watchdog)."""
    return _PRCTL is not None and threading.current_thread() is threading.main_thread()


def popen(args: list[str], **kwargs: Any) -> subprocess.Popen:
    """subprocess.Popen in a new session (its own process group), tied to this process's life."""
    if uses_death_signal():
        return subprocess.Popen(args, start_new_session=True, preexec_fn=_death_signal_preexec(_PRCTL, os.getpid()),
                                **kwargs)
    proc = subprocess.Popen(args, start_new_session=True, **kwargs)
    _WATCHDOG.guard(proc.pid)
    return proc


def release(pid: int) -> None:
    """The child (a process group leader started by popen) was stopped: the watchdog forgets it."""
    _WATCHDOG.release(pid)


class _Watchdog:
    """The parent's end of the watchdog process (started on first use, restarted if it died)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._owner = 0  # the pid that started it (a forked child must start its own)
        self._guarded: set[int] = set()

    def guard(self, pid: int) -> None:
        with self._lock:
            self._guarded.add(pid)
            self._send(f"+{pid}\n")

    def release(self, pid: int) -> None:
        with self._lock:
            if pid in self._guarded:
                self._guarded.discard(pid)
                self._send(f"-{pid}\n")

    def _send(self, line: str) -> None:
        for _ in range(2):
            if self._proc is None or self._owner != os.getpid() or self._proc.poll() is not None:
                self._start()
                line = "".join(f"+{p}\n" for p in self._guarded)  # a new watchdog learns every guarded group
            try:
                self._proc.stdin.write(line)
                self._proc.stdin.flush()
                return
            except OSError:  # it died: start another
                self._proc = None
        raise RuntimeError("the lifeline watchdog cannot be started")

    def _start(self) -> None:
        self._proc = subprocess.Popen([sys.executable, "-I", os.path.abspath(__file__), "--watchdog"],
                                      stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, bufsize=1,
                                      start_new_session=True)
        self._owner = os.getpid()

    def close(self) -> None:
        """At normal exit: end-of-file tells the watchdog we are gone (it stops whatever is still guarded)."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None or self._owner != os.getpid():
            return
        try:
            proc.stdin.close()
            proc.wait(timeout=1.0)  # at once when nothing is left to stop
        except (OSError, subprocess.TimeoutExpired):
            pass


_WATCHDOG = _Watchdog()
atexit.register(_WATCHDOG.close)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_groups(groups: set[int], sig: int) -> None:
    for pgid in groups:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def watchdog_main(stream=None, grace: float = GRACE) -> int:
    """The watchdog process: read +PID / -PID lines until end-of-file, then stop what is still guarded."""
    groups: set[int] = set()
    for line in stream or sys.stdin:
        line = line.strip()
        if line[:1] in ("+", "-") and line[1:].isdigit():
            (groups.add if line[0] == "+" else groups.discard)(int(line[1:]))
    groups = {g for g in groups if _group_alive(g)}
    _signal_groups(groups, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while groups and time.monotonic() < deadline:
        time.sleep(0.1)
        groups = {g for g in groups if _group_alive(g)}
    _signal_groups(groups, signal.SIGKILL)
    return 0


if __name__ == "__main__" and sys.argv[1:] == ["--watchdog"]:
    for _sig in (signal.SIGINT, signal.SIGHUP):  # only the end of the pipe ends it, not a terminal
        signal.signal(_sig, signal.SIG_IGN)
    sys.exit(watchdog_main())
