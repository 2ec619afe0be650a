"""Django's ASGI handler with each request's middleware chain, view and rendering in one thread
hop, on a thread kept for the next request.

Django's own ``ASGIHandler`` loads the chain for async use. Several of our middlewares (and
WhiteNoise's, Axes' beside a sync one) are sync-only, so a request crosses between the event loop
and its thread eight times: into the chain, back out to the async inner handler, into the view,
out, into ``render``, out, back into the chain and out. Under load each crossing waits for the GIL
while other threads run. Loaded for sync use, the chain, the view and the rendering run in one
crossing, as under WSGI; the request is still read and the response still sent on the event loop.
Async views (``readyz``) still run on the event loop, through ``async_to_sync``.

Each request still has a thread of its own (``ThreadSensitiveContext``), so a view blocking on a
charger (``commands``) holds no other request. Django starts that thread for the request and joins
it after; here a finished request's thread serves the next one (as a WSGI server's thread pool
does; ``close_old_connections`` still runs at the end of every request in it). A thread whose view
may still be running (the client went away and the request was cancelled) is not reused.
Measured with ``benchmarks/command_roundtrip.py`` (issue 15).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import HttpRequest, HttpResponseBase
from django.urls import set_script_prefix

IDLE_THREADS_KEPT = 64
# Per request: how many of its get_response calls did not come back (cancelled while in the thread).
_unfinished: contextvars.ContextVar[list[int]] = contextvars.ContextVar("unfinished_get_response")


class OneHopAsgiHandler(ASGIHandler):
    def __init__(self) -> None:
        super().__init__()
        self._idle_threads: list[ThreadPoolExecutor] = []

    def load_middleware(self, is_async: bool = False) -> None:
        """The chain for sync use, whatever ``ASGIHandler.__init__`` asks."""
        super().load_middleware(is_async=False)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        thread = self._idle_threads.pop() if self._idle_threads else ThreadPoolExecutor(1, "http-request")
        unfinished = [0]
        _unfinished.set(unfinished)
        try:
            async with ThreadSensitiveContext(executor=thread):
                await self.handle(scope, receive, send)
        finally:
            if unfinished[0] or len(self._idle_threads) >= IDLE_THREADS_KEPT:
                thread.shutdown(wait=False)  # it ends once its work is done
            else:
                self._idle_threads.append(thread)

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Django's ``ASGIHandler.handle``, but ``request_started`` and, for a response that is not
        streamed, its ``close`` (``request_finished``: the database connection back to the pool)
        are sent in the request's thread with the view (``get_response_async``): one crossing per
        request instead of three. Django sends them each from the event loop through a crossing of
        its own. A streamed response (a file) is still closed after it was sent."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            assert error_response is not None
            await signals.request_started.asend(sender=self.__class__, scope=scope)
            body_file.close()
            await self.send_response(error_response, send)
            await sync_to_async(error_response.close)()
            return

        async def process_request() -> HttpResponseBase:
            response = await self.run_get_response(request)
            assert response is not None
            with contextlib.suppress(asyncio.CancelledError):  # the client went away while it was sent
                await self.send_response(response, send)
            return response

        # As Django: a disconnect while the view runs cancels the request.
        processing = asyncio.create_task(process_request())
        tasks: list[asyncio.Task[Any]] = [asyncio.create_task(self.listen_for_disconnect(receive)), processing]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            response = processing.result()
        except asyncio.CancelledError:
            await signals.request_finished.asend(sender=self.__class__)
        else:
            if not response.closed:
                await sync_to_async(response.close)()
        body_file.close()

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        """``request_started``, ``get_response`` (the sync chain, view and rendering) and the
        closing of a response that is not streamed, in the request's thread."""
        unfinished = _unfinished.get([0])
        unfinished[0] += 1
        response = await sync_to_async(self._response_in_thread, thread_sensitive=True)(request)
        unfinished[0] -= 1  # not reached when cancelled: the view may still be running
        return response

    def _response_in_thread(self, request: HttpRequest) -> HttpResponseBase:
        signals.request_started.send(sender=self.__class__, scope=request.scope)  # type: ignore[attr-defined]  # an ASGIRequest
        response = self.get_response(request)
        if not response.streaming:
            response._handler_class = self.__class__  # type: ignore[attr-defined]  # as run_get_response sets it
            response.close()  # its content is rendered: sending it needs nothing it frees
        return response


def daphne_form_parsing_off() -> None:
    """Stop Twisted parsing every urlencoded or multipart POST body into ``request.args`` for daphne,
    which never reads them (it hands the raw body to the application, which parses it itself).

    Twisted does it by default (``Request(parsePOSTFormSubmission=True)``), and daphne does not
    pass the option: parsing the Content-Type header alone (through ``email``) cost about 4 % of
    an API process's CPU per command POST, and a multipart upload (firmware) was parsed twice.
    """
    from daphne.http_protocol import WebRequest

    # A data descriptor on the subclass wins over the attribute Twisted's __init__ assigns.
    WebRequest._parsePOSTFormSubmission = property(lambda request: False, lambda request, value: None)
