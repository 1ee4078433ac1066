"""One real `instamsg serve` per test module, and an API app on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.support import RunningServer
from tests.support.instamsg_server import InstaMsgServer


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server of this module's own (only the REST listener matters), stopped after the module."""
    server = InstaMsgServer(tmp_path_factory.mktemp("serve") / "data").start()
    try:
        client_key, client_secret = server.create_app("sdk-tests")
        yield RunningServer(server, client_key, client_secret)
    finally:
        server.stop()
