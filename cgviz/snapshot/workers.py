"""Worker processes (`snapshot -j`) that never outlive their leader, whatever signal ends it."""

from __future__ import annotations

import os
import signal
import sys

# prctl(2): ask the kernel to send this signal when the parent (the thread that started us) dies
_PR_SET_PDEATHSIG = 1
# How often a worker without prctl (macOS, BSD) looks whether its leader is still there
POLL_SECONDS = 0.5


def init(leader: int) -> None:
    """A worker's initializer: die with the leader `leader` (its pid), and stop Graphviz when dying.

    A pool's workers wait on a queue whose writing end they hold themselves, so when the leader is
    killed (SIGHUP from a closed terminal, SIGKILL, an OOM kill) they never see end of file and wait
    forever, each with the `dot` it was running. On Linux the kernel sends SIGTERM when the leader
    dies (PR_SET_PDEATHSIG); elsewhere a thread watches the parent pid. SIGTERM and SIGHUP stop the
    worker's `dot` and end it at once (the pool would catch an exception raised from the handler
    and carry on with its queue)."""
    from ..core.pywarnings import worker_init
    worker_init()
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, _die)
    if not _pdeathsig(signal.SIGTERM):
        _watch(leader)
    if os.getppid() != leader:          # the leader died before the request above took effect
        _die(signal.SIGTERM, None)


def _pdeathsig(sig: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(leader: int) -> None:
    import threading
    import time

    def watch() -> None:
        while os.getppid() == leader:
            time.sleep(POLL_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)       # the handler runs in the main thread
    threading.Thread(target=watch, name="cgviz-leader-watch", daemon=True).start()


def _die(signum, frame) -> None:
    from ..view.graphviz import stop_all
    stop_all()
    os._exit(128 + signum)


def stop_workers(pool) -> None:
    """Send SIGTERM to every worker of a ProcessPoolExecutor and drop its queued work."""
    terminate = getattr(pool, "terminate_workers", None)      # Python 3.14+
    if terminate is not None:
        terminate()
        return
    procs = list((getattr(pool, "_processes", None) or {}).values())    # shutdown() forgets them
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        try:
            proc.terminate()
        except (OSError, ValueError):       # already gone
            pass
