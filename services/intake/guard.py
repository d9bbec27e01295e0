"""Checks every request body before the application sees it.

Bodies of POST, PUT and PATCH must be JSON (415 otherwise), within ``API_MAX_BODY_BYTES``
(413, whether announced by Content-Length or streamed), valid UTF-8 (400), nested no deeper than
``API_MAX_JSON_DEPTH`` (422) and free of NUL characters, which PostgreSQL cannot store (422).
The body is read once and handed on unchanged.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.intake.problems import problem_response
from shared.settings import ApiSettings

WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
# ``\u0000`` preceded by an even number of backslashes, i.e. an escaped NUL, not the text "\u0000".
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000", re.IGNORECASE)
# The cheap test first: most bodies hold no ``\u0000`` at all.
_MAY_ESCAPE_NUL = re.compile(rb"\\u0000", re.IGNORECASE)


class BodyTooLarge(Exception):
    pass


class RequestGuard:
    def __init__(self, app: ASGIApp, settings: ApiSettings) -> None:
        self._app = app
        self._settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WITH_BODY:
            await self._app(scope, receive, send)
            return
        declared, content_type = _content_headers(scope)
        limit = self._settings.max_body_bytes
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._refuse(scope, receive, send, 413, f"The body exceeds {limit} bytes.")
            return
        try:
            body = await read_body(receive, limit)
        except BodyTooLarge:
            await self._refuse(scope, receive, send, 413, f"The body exceeds {limit} bytes.")
            return
        problem = self._check(content_type, body)
        if problem is not None:
            await self._refuse(scope, receive, send, *problem)
            return
        await self._app(scope, replay(body, receive), send)

    def _check(self, content_type: str, body: bytes) -> tuple[int, str] | None:
        if not body:
            return None
        media = content_type.split(";", 1)[0].strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            return 415, "Send the body as application/json."
        try:
            if not body.isascii():
                body.decode("utf-8")
        except UnicodeDecodeError:
            return 400, "The body is not valid UTF-8."
        if _depth_exceeds(body, self._settings.max_json_depth):
            return 422, f"The JSON is nested deeper than {self._settings.max_json_depth} levels."
        if b"\x00" in body or (_MAY_ESCAPE_NUL.search(body) and _ESCAPED_NUL.search(body)):
            return 422, "NUL characters are not allowed in any field."
        return None

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, status: int, detail: str
    ) -> None:
        errors = [{"field": "body", "message": detail, "type": "body"}] if status == 422 else None
        response = (
            problem_response(status, detail, errors=errors)
            if errors
            else (problem_response(status, detail))
        )
        await response(scope, receive, send)


def _content_headers(scope: Scope) -> tuple[str | None, str]:
    """Content-Length (None when absent) and Content-Type (ASGI names are lower case)."""
    length, media = None, ""
    for name, value in scope["headers"]:
        if name == b"content-length":
            length = value.decode("latin-1")
        elif name == b"content-type":
            media = value.decode("latin-1")
    return length, media


async def read_body(receive: Receive, limit: int | None = None) -> bytes:
    """The whole body; :class:`BodyTooLarge` past ``limit`` bytes, if one is given."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` giving ``body`` first, as one message, then what the client sends next."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _depth_exceeds(body: bytes, limit: int) -> bool:
    """True when arrays/objects nest deeper than ``limit``; strings are skipped."""
    if body.count(b"{") + body.count(b"[") <= limit:
        return False
    depth = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x7B, 0x5B):  # { [
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x7D, 0x5D):  # } ]
            depth -= 1
    return False
