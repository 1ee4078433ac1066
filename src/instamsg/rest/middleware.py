"""Pure ASGI middleware guarding request bodies before any handler runs."""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from instamsg.rest.errors import error_response

_JSON_METHODS = frozenset({"POST", "PUT", "PATCH"})
# PUT operations that take no body accept an empty body, `{}` and any Content-Type (spec §2.1).
_BODYLESS_PUT_SUFFIXES = ("/reset_auth_token", "/reset_certificate", "/release")
# POST reboot takes no body either (spec §2.7): `{}`, empty or anything, with any Content-Type.
_BODYLESS_POST_SUFFIXES = ("/reboot",)


class BodyGuard:
    """413 for bodies over the limit and 415 for non-JSON bodies sent to JSON endpoints.

    The whole body is read here (it is bounded) and replayed, so a streaming client cannot get past
    the limit by omitting Content-Length.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        json_prefixes: tuple[str, ...],
        streamed_paths: re.Pattern[str] | None = None,
    ):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.json_prefixes = json_prefixes
        # Routes that read (and bound) their own streamed multipart bodies: file uploads.
        self.streamed_paths = streamed_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _JSON_METHODS:
            await self.app(scope, receive, send)
            return
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]
        }
        if (
            self.streamed_paths is not None
            and self.streamed_paths.match(scope["path"])
            and headers.get("content-type", "").lower().startswith("multipart/form-data")
        ):
            await self.app(scope, receive, send)
            return
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        path: str = scope["path"]
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if (
            body.strip()
            and path.startswith(self.json_prefixes)
            and not (content_type == "application/json" or content_type.endswith("+json"))
            and not content_type.startswith("multipart/form-data")
            and not (scope["method"] == "PUT" and path.rstrip("/").endswith(_BODYLESS_PUT_SUFFIXES))
            and not (scope["method"] == "POST" and path.rstrip("/").endswith(_BODYLESS_POST_SUFFIXES))
        ):
            response = error_response(
                415,
                "unsupported_media_type",
                "Send the request body as JSON with Content-Type: application/json.",
                {"content_type": content_type or None},
            )
            await response(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            "payload_too_large",
            f"The request body exceeds the limit of {self.max_body_bytes} bytes.",
            {"max_bytes": self.max_body_bytes},
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)
