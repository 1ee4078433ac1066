"""Starting and reaping the server processes the tests run (shared by postgres.py and mosquitto.py).

PostgreSQL refuses to run as root and Mosquitto warns about it, while CI runs the suite as root: as
root the servers run as an unprivileged service user that owns their temporary directory; otherwise
they run as the current user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

FALLBACK_USER = "nobody"


@dataclass(frozen=True)
class RunAs:
    """The unprivileged account a server runs as when the tests run as root."""

    name: str
    uid: int
    gid: int


def run_as(preferred: str) -> RunAs | None:
    """Account to run a server as: ``None`` (the current user) unless we are root.

    As root, ``preferred`` (the account the Debian package creates, e.g. ``postgres``) or else
    ``nobody``.
    """
    if os.geteuid() != 0:
        return None
    for name in (preferred, FALLBACK_USER):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return RunAs(name=name, uid=entry.pw_uid, gid=entry.pw_gid)
    raise RuntimeError(f"running as root but neither user {preferred!r} nor {FALLBACK_USER!r} exists")


def _traversable_by_others(path: Path) -> bool:
    """Whether every directory from / down to ``path`` lets other users through (o+x)."""
    for directory in (path, *path.parents):
        try:
            if not directory.stat().st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    return True


def make_temp_dir(prefix: str, owner: RunAs | None) -> Path:
    """Create a fresh private directory, owned by ``owner`` when given.

    The base is ``tempfile.gettempdir()``; when the server runs as another user and TMPDIR points
    somewhere it cannot reach (e.g. under /root), /tmp is used instead.
    """
    base = Path(tempfile.gettempdir())
    if owner is not None and not _traversable_by_others(base):
        base = Path("/tmp")
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    if owner is not None:
        os.chown(path, owner.uid, owner.gid)
    return path


def chown_tree(path: Path, owner: RunAs | None) -> None:
    """Give ``owner`` the files the parent created in ``path`` (config files and the like)."""
    if owner is None:
        return
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            os.chown(os.path.join(root, name), owner.uid, owner.gid)
    os.chown(path, owner.uid, owner.gid)


def server_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a server: the caller's, minus libpq's PG* variables, with a C locale.

    PG* variables (PGDATA, PGOPTIONS, ...) of the developer's shell must not leak into the throwaway
    cluster; a C locale avoids initdb failing on a locale that is not generated on the machine.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env.update({"LC_ALL": "C", "LANG": "C", "HOME": str(home)})
    if extra:
        env.update(extra)
    return env


def _pdeathsig_prefix(sig: signal.Signals) -> list[str]:
    """``setpriv --pdeathsig`` so the kernel signals the server if the test process dies (SIGKILL,
    xdist worker crash) before atexit handlers can run; empty when setpriv is unavailable."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return []
    return [setpriv, "--pdeathsig", sig.name.removeprefix("SIG")]


def spawn(
    argv: Sequence[str],
    *,
    owner: RunAs | None,
    log_path: Path,
    cwd: Path,
    env: Mapping[str, str],
    death_signal: signal.Signals = signal.SIGTERM,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as ``owner`` with stdout and stderr appended to ``log_path``.

    The server gets its own session so that Ctrl-C in the terminal reaches only pytest, which then
    stops the server in order (fixture teardown or atexit); ``death_signal`` is what the kernel sends
    it if the test process dies without doing so.
    """
    with open(log_path, "ab") as log:
        if owner is not None:
            os.chown(log_path, owner.uid, owner.gid)
        return subprocess.Popen(
            [*_pdeathsig_prefix(death_signal), *argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
            # Popen switches user in the forked child without running Python code there (unlike
            # preexec_fn, which is unsafe with threads); extra_groups=[] drops root's groups.
            user=owner.uid if owner else None,
            group=owner.gid if owner else None,
            extra_groups=[] if owner else None,
        )


def run(
    argv: Sequence[str],
    *,
    owner: RunAs | None,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run a short command (initdb, psql) as ``owner``; raise with its output if it fails."""
    result = subprocess.run(
        list(argv),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=dict(env),
        timeout=timeout,
        user=owner.uid if owner else None,
        group=owner.gid if owner else None,
        extra_groups=[] if owner else None,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed with exit code {result.returncode}:\n{result.stdout}{result.stderr}"
        )
    return result


def terminate(
    proc: subprocess.Popen[bytes],
    signals: Sequence[tuple[signal.Signals, float]] = ((signal.SIGTERM, 5.0),),
) -> None:
    """Stop ``proc`` and every process it started, escalating to SIGKILL.

    ``signals`` are tried in order, each with how long to wait for the process to exit. Children are
    collected first (PostgreSQL backends) so that none outlives the server even if it is killed.
    """
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        children = []
    for sig, timeout in signals:
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            continue
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    _, alive = psutil.wait_procs(children, timeout=5.0)
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()
    psutil.wait_procs(alive, timeout=5.0)


def tail(path: Path, lines: int = 30) -> str:
    """Last ``lines`` lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])
