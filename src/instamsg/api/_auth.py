"""OAuth2 client credentials as an httpx.Auth flow: fetch, cache and renew the app's access token."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Generator
from time import monotonic

import httpx

from instamsg.api._errors import UnexpectedResponseError, is_invalid_token
from instamsg.api._models import AccessToken

# Renew this long before the token runs out (or at 90 % of its lifetime for very short ones), so that a
# request never leaves with a token that expires on its way.
RENEW_MARGIN_SECONDS = 60.0


class TokenAuth(httpx.Auth):
    """Bearer authentication with a token the flow obtains itself from the client key and secret.

    The token is requested when there is none, when it is about to expire, and once more when the
    server answers 401 ``invalid_token`` (invalidated or expired early). A failing token request is
    returned as the response, so the caller sees the server's error (``invalid_client``). Concurrent
    requests share one token request: a lock (one for threads, one for the event loop) guards it.
    """

    def __init__(self, token_url: httpx.URL, client_key: str, client_secret: str) -> None:
        self.token_url = token_url
        self._basic = httpx.BasicAuth(client_key, client_secret)
        self._token: str | None = None
        self._renew_at = 0.0
        self._thread_lock = threading.Lock()
        self._loop_lock: asyncio.Lock | None = None

    @property
    def token(self) -> str | None:
        """The cached access token, or None."""
        return self._token

    def basic_auth(self) -> httpx.BasicAuth:
        """HTTP Basic with the client key and secret, for the OAuth2 endpoints themselves."""
        return self._basic

    def build_token_request(self, request: httpx.Request) -> httpx.Request:
        """The token request made on behalf of ``request``, with its timeouts and User-Agent."""
        token_request = httpx.Request(
            "POST",
            self.token_url,
            params={"grant_type": "client_credentials"},
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
                "User-Agent": request.headers.get("User-Agent", "instamsg-python"),
            },
            extensions={"timeout": request.extensions.get("timeout", {})},
        )
        return next(self._basic.auth_flow(token_request))

    def store(self, response: httpx.Response) -> AccessToken:
        """Cache the token of a 200 token response and return it."""
        try:
            token = AccessToken.from_json(response.json())
        except (ValueError, KeyError, TypeError, AttributeError):
            raise UnexpectedResponseError(
                f"{response.url} did not answer with an OAuth2 access token; is this an InstaMsg server?",
                status=response.status_code,
            ) from None
        lifetime = max(float(token.expires_in), 0.0)
        self._token = token.access_token
        self._renew_at = monotonic() + lifetime - min(RENEW_MARGIN_SECONDS, lifetime / 10)
        return token

    def forget(self, token: str | None = None) -> None:
        """Drop the cached token (only if it is still ``token``, when one is given)."""
        if token is None or token == self._token:
            self._token = None
            self._renew_at = 0.0

    def _needs_token(self) -> bool:
        return self._token is None or monotonic() >= self._renew_at

    def _authorize(self, request: httpx.Request) -> str:
        assert self._token is not None
        request.headers["Authorization"] = f"Bearer {self._token}"
        return self._token

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.read()  # a request sent twice needs its body in memory
        for attempt in range(2):
            with self._thread_lock:
                if self._needs_token():
                    token_response = yield self.build_token_request(request)
                    token_response.read()
                    if token_response.status_code != 200:
                        return  # the caller maps the error response (e.g. invalid_client)
                    self.store(token_response)
                sent_with = self._authorize(request)
            response = yield request
            if attempt == 0 and response.status_code == 401:
                response.read()
                if is_invalid_token(response):
                    self.forget(sent_with)
                    continue
            return

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        await request.aread()
        if self._loop_lock is None:
            self._loop_lock = asyncio.Lock()
        for attempt in range(2):
            async with self._loop_lock:
                if self._needs_token():
                    token_response = yield self.build_token_request(request)
                    await token_response.aread()
                    if token_response.status_code != 200:
                        return
                    self.store(token_response)
                sent_with = self._authorize(request)
            response = yield request
            if attempt == 0 and response.status_code == 401:
                await response.aread()
                if is_invalid_token(response):
                    self.forget(sent_with)
                    continue
            return
