"""Loopback TCP port helpers for the throwaway servers the tests start."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

LOOPBACK = "127.0.0.1"

# Ports already handed out by this process: the kernel may return a port again once its probe socket
# is closed, and two servers of one test must not be given the same port.
_handed_out: set[int] = set()


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that nothing listens on now and this process has not handed out.

    Another process may still grab it before it is used; servers retry with a new port when that happens.
    """
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free TCP port found on {host}")


def port_is_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(
    host: str,
    port: int,
    timeout: float = 10.0,
    *,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Wait until ``host:port`` accepts connections.

    ``alive`` is polled too so that a server which died at startup fails at once instead of after
    ``timeout``. Raises ``TimeoutError`` or ``RuntimeError`` (server died).
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        if port_is_open(host, port):
            return
        if alive is not None and not alive():
            raise RuntimeError(f"server exited before listening on {host}:{port}")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.1f}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
