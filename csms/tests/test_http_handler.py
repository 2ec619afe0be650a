"""The ASGI handler that runs each request's chain, view and rendering in one thread hop."""

import pytest
from asgiref.testing import ApplicationCommunicator
from django.core import signals

from csms.http_handler import OneHopAsgiHandler

pytestmark = pytest.mark.django_db(transaction=True)


async def get(handler, path):
    scope = {"type": "http", "method": "GET", "path": path, "query_string": b"", "headers": [(b"host", b"localhost")]}
    communicator = ApplicationCommunicator(handler, scope)
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(5)
    body = await communicator.receive_output(5)
    await communicator.wait(5)
    return start["status"], body["body"]


async def test_a_finished_requests_thread_serves_the_next():
    handler = OneHopAsgiHandler()
    assert (await get(handler, "/healthz"))[0] == 200
    [kept] = handler._idle_threads
    assert (await get(handler, "/healthz"))[0] == 200
    assert handler._idle_threads == [kept]


async def test_errors_and_async_views_are_answered_as_before():
    handler = OneHopAsgiHandler()
    status, _ = await get(handler, "/api/v1/chargepoints/")
    assert status == 401
    status, _ = await get(handler, "/readyz")
    assert status in (200, 503)


async def test_a_request_starts_and_finishes_once_with_its_response_sent():
    handler = OneHopAsgiHandler()
    sent: list[str] = []

    def started(**kwargs):
        sent.append("started")

    def finished(**kwargs):
        sent.append("finished")

    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    try:
        assert (await get(handler, "/healthz"))[0] == 200
        assert (await get(handler, "/api/v1/chargepoints/"))[0] == 401
    finally:
        signals.request_started.disconnect(started)
        signals.request_finished.disconnect(finished)
    assert sent == ["started", "finished"] * 2
