"""One writer per run folder: a run holds ``output_dir/.dopsd.lock`` from before it writes anything until it ends.

The lock is an exclusive ``flock`` on that file, which the operating system drops when its process ends, however
it ends: a lock left by a crashed or killed run is stale and the next run takes it over. The file names its holder
(pid and host), for the message that refuses a second writer. Where the filesystem has no ``flock``, the holder's
pid decides: a lock of a pid that no longer runs on this host is stale.

A run of several processes (``accelerate launch``) is one writer: its main process takes the lock, and every
process learns whether it got it, so that all of them stop together when it did not.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import time
from pathlib import Path

from dopsd.errors import DopsdError

LOCK_NAME = ".dopsd.lock"

try:
    import fcntl
except ImportError:  # not POSIX: the pid rule alone
    fcntl = None


class RunFolderInUse(DopsdError):
    """Another live process (group) writes into this run folder."""

    on_every_process = True  # raised by every process of a run together: the command line prints it once


def _holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _pid_alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _in_use(folder: Path, holder: dict) -> RunFolderInUse:
    since = holder.get("since")
    when = time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(since)) if isinstance(since, (int, float)) else ""
    who = f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}"
    return RunFolderInUse(
        f"{folder} is in use by a live run ({who}{when}): wait for it to end, or choose another --output-dir "
        f"(if that process is gone on another host, delete {folder / LOCK_NAME})")


def _stale_by_pid(holder: dict) -> bool:
    """Without ``flock``: only a holder on this host whose pid no longer runs is known to be gone."""
    return holder.get("host") == socket.gethostname() and not _pid_alive(holder.get("pid"))


class RunLock:
    """The lock of one run folder, held by this process (see the module's docstring)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.handle = None

    def acquire(self) -> RunLock:
        """Takes the lock (creating the folder), or raises :class:`RunFolderInUse` naming the live holder."""
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if not self._lock(fd):
                    raise _in_use(self.folder, _holder(self.path))
                # the file may have been removed (released) between open and lock: lock the one at the path
                if os.path.exists(self.path) and os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    break
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
        previous = _holder(self.path)
        if previous.get("pid") not in (None, os.getpid()):
            print(f"note: {self.folder}: the lock of pid {previous.get('pid')} on host {previous.get('host')} is "
                  "stale (that run ended without releasing it); this run takes the folder over", file=sys.stderr)
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}) + "\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, record.encode(), 0)
        self.handle = fd
        return self

    def _lock(self, fd: int) -> bool:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except OSError as error:
                if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    return False
                if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    raise
        holder = _holder(self.path)  # no flock here: the recorded pid decides
        return not holder or holder.get("pid") == os.getpid() or _stale_by_pid(holder)

    def release(self) -> None:
        """Removes the lock file and drops the lock; the folder is then free."""
        if self.handle is None:
            return
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == os.fstat(self.handle).st_ino:
                self.path.unlink()
        os.close(self.handle)  # drops the flock
        self.handle = None


def check_free(folder: str | Path) -> None:
    """Raises :class:`RunFolderInUse` when a live run holds ``folder``; writes nothing (an early, read-only check,
    made before a model is loaded; :class:`RunLock` is what takes the folder)."""
    path = Path(folder) / LOCK_NAME
    if not path.is_file():
        return
    holder = _holder(path)
    if fcntl is not None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return  # nobody holds it: a stale file
        except OSError as error:
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise _in_use(Path(folder), holder) from None
            if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
        finally:
            os.close(fd)
    if holder and holder.get("pid") != os.getpid() and not _stale_by_pid(holder):
        raise _in_use(Path(folder), holder)


def _agreed(accelerator, action) -> None:
    """Runs ``action`` on the main process; every process raises its error, if it raised one."""
    message = None
    if accelerator is None or accelerator.is_main_process:
        try:
            action()
        except RunFolderInUse as error:
            message = str(error)
    if accelerator is not None and accelerator.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        message = broadcast_object_list([message])[0]
    if message is not None:
        raise RunFolderInUse(message)


def check_folder_free(folder: str | Path, accelerator=None) -> None:
    """:func:`check_free` by the main process, its answer shared by every process."""
    _agreed(accelerator, lambda: check_free(folder))


@contextlib.contextmanager
def hold_run_folder(folder: str | Path, accelerator=None):
    """Holds ``folder``'s lock for the ``with`` block: taken by the main process (the process group is one
    writer), released however the block ends."""
    lock = RunLock(folder)
    _agreed(accelerator, lock.acquire)
    try:
        yield lock
    finally:
        lock.release()
