"""Mathematical equivalence with a hard time limit, from any thread.

math-verify bounds its work with ``signal.alarm``, which only the main thread may use, and some inputs
(``2^{10^{10}}``, ``\\binom{10^6}{500000}``) run for minutes without a bound. So the judging happens in a child
process (``math_verify_worker.py``) that is killed and restarted when an answer overruns; callers in any thread
share it through a lock. Answers longer than ``MAX_ANSWER_CHARS`` are refused without asking. POSIX only
(``select`` on pipes).
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

from dopsd.errors import DopsdError

MAX_ANSWER_CHARS = 500
WORKER = Path(__file__).with_name("math_verify_worker.py")
STARTUP_SECONDS = 60.0
# run_path leaves sys.path alone, so the package directory cannot shadow modules in the child
LAUNCH = "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"


class MathVerifier:
    """Judges ``equivalent(reference, answer)``. ``timeout`` bounds each of math-verify's steps (two parses and
    a comparison, whole seconds); the child is killed after ``hard_limit`` seconds on one answer
    (default ``3 * timeout + 2``)."""

    def __init__(self, timeout: int = 5, hard_limit: float | None = None):
        self.timeout = timeout
        self.hard_limit = 3 * timeout + 2 if hard_limit is None else hard_limit
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._owner = os.getpid()
        self._pending = b""

    def equivalent(self, reference: str, answer: str) -> bool:
        if not answer.strip() or len(answer) > MAX_ANSWER_CHARS:
            return False
        request = (json.dumps([reference, answer]) + "\n").encode()
        with self._lock:
            if self._owner != os.getpid():  # a forked copy: the child process belongs to the parent
                self._process, self._owner, self._pending = None, os.getpid(), b""
            process = self._process or self._start()
            try:
                process.stdin.write(request)
                process.stdin.flush()
                reply = self._read_line(self.hard_limit)
            except OSError:  # the child died on this input
                reply = None
            if reply is None:
                self._close_locked()
                return False
        return json.loads(reply) is True

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            for stream in (self._process.stdin, self._process.stdout):
                stream.close()
        self._process, self._pending = None, b""

    def _start(self) -> subprocess.Popen:
        self._process = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, str(WORKER), str(self.timeout)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0,
        )
        hello = self._read_line(STARTUP_SECONDS)
        try:
            status = json.loads(hello)
        except (TypeError, ValueError):
            status = {"error": f"the math-verify worker did not start (it said {hello!r})"}
        if not isinstance(status, dict) or not status.get("ready"):
            self._close_locked()
            raise DopsdError(f"cannot judge MATH answers: {status}")
        return self._process

    def _read_line(self, seconds: float) -> bytes | None:
        """One line from the child, or None if it takes longer than ``seconds`` or the child exits."""
        fd, deadline = self._process.stdout.fileno(), time.monotonic() + seconds
        while b"\n" not in self._pending:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(fd, 4096) if ready else b""
            if not chunk:
                return None
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return line


_shared: MathVerifier | None = None
_shared_lock = threading.Lock()


def shared_verifier() -> MathVerifier:
    """One verifier (one child process) per process, started on first use and stopped at exit."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = MathVerifier()
            atexit.register(_shared.close)
        return _shared
