"""Helpers of the SDK tests: the running server, a transport that records exchanges, unique names."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import httpx

from tests.support.instamsg_server import InstaMsgServer

UNKNOWN_UUID = "00000000-0000-4000-8000-000000000000"
_counter = itertools.count(1)


def unique(prefix: str) -> str:
    """A name no other test of this process uses (tests share one server per module)."""
    return f"{prefix}-{next(_counter)}"


@dataclass(frozen=True)
class RunningServer:
    """A running `instamsg serve` and the credentials of an app on it."""

    server: InstaMsgServer
    client_key: str
    client_secret: str

    @property
    def url(self) -> str:
        return self.server.base_url


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str
    status: int


class RecordingTransport(httpx.AsyncHTTPTransport):
    """The real async transport, keeping (method, path, status) of every exchange."""

    def __init__(self) -> None:
        super().__init__()
        self.exchanges: list[Exchange] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        self.exchanges.append(Exchange(request.method, request.url.path, response.status_code))
        return response

    def count(self, path: str) -> int:
        return sum(1 for exchange in self.exchanges if exchange.path == path)


class RecordingSyncTransport(httpx.HTTPTransport):
    """The real sync transport, keeping (method, path, status) of every exchange."""

    def __init__(self) -> None:
        super().__init__()
        self.exchanges: list[Exchange] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        self.exchanges.append(Exchange(request.method, request.url.path, response.status_code))
        return response

    def count(self, path: str) -> int:
        return sum(1 for exchange in self.exchanges if exchange.path == path)
