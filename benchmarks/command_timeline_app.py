"""The ASGI application of ``command_timeline.py``'s two daphne processes: ``csms.asgi`` with a
timestamp written at each step of a command's round trip (a diagnostic, never in the product).

Each event is one line ``name wall_ns process_cpu_ns`` appended to ``$CSMS_TIMELINE_DIR/<pid>.log``
(``time.time_ns()``: one clock for every process on the machine). A name ends in ``>`` when a step
starts and ``<`` when it ends. Loaded as ``daphne command_timeline_app:application`` with
``benchmarks/`` on PYTHONPATH; ``csms.asgi`` has imported the URLconf by then, so every patched
function is looked up through its module or class at each call.
"""

from __future__ import annotations

import functools
import inspect
import os
import time
from collections.abc import Callable
from typing import Any

from csms.asgi import application  # sets Django up and loads every view

_FILE = os.open(
    os.path.join(os.environ["CSMS_TIMELINE_DIR"], f"{os.getpid()}.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644
)


def event(name: str) -> None:
    os.write(_FILE, f"{name} {time.time_ns()} {time.process_time_ns()}\n".encode())


def traced(owner: Any, attribute: str, name: str) -> None:
    """``owner.attribute`` replaced by a wrapper writing ``name>`` before and ``name<`` after it."""
    original: Callable[..., Any] = getattr(owner, attribute)
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def asynchronous(*args: Any, **kwargs: Any) -> Any:
            event(f"{name}>")
            try:
                return await original(*args, **kwargs)
            finally:
                event(f"{name}<")

        setattr(owner, attribute, asynchronous)
        return

    @functools.wraps(original)
    def synchronous(*args: Any, **kwargs: Any) -> Any:
        event(f"{name}>")
        try:
            return original(*args, **kwargs)
        finally:
            event(f"{name}<")

    setattr(owner, attribute, synchronous)


def _install() -> None:
    from daphne.http_protocol import WebRequest
    from django.core.handlers.asgi import ASGIHandler
    from rest_framework.views import APIView

    from commands import services
    from ocpp_gateway.channel_layer import BlockingPoolRedisChannelLayer
    from ocpp_gateway.consumers import OcppConsumer

    steps: list[tuple[Any, str, str]] = [
        (WebRequest, "process", "http_request"),  # daphne: the request read and parsed
        (ASGIHandler, "send_response", "send_response"),  # back on the event loop, the answer written
        (APIView, "dispatch", "view"),  # in the request's thread, past the middleware
        (APIView, "perform_authentication", "auth"),
        (APIView, "check_throttles", "throttle"),
        (services, "command_send", "command_send"),
        (services, "_command_recorded_at_once", "record"),  # the pending row's statement
        (services, "command_complete", "outcome"),  # the outcome's UPDATE and its commit
        (BlockingPoolRedisChannelLayer, "send_receive_blocking", "send_receive"),
        (BlockingPoolRedisChannelLayer, "_delivered", "delivered"),  # B's receiver popped a message
        (BlockingPoolRedisChannelLayer, "send", "layer_send"),  # the event loop's send (B's reply)
        (OcppConsumer, "ocpp_call", "ocpp_call"),
        (OcppConsumer, "send", "ws_send"),  # the CALL's frame to the charger
        (OcppConsumer, "_text_received", "ws_received"),  # the charger's answer
    ]
    for owner, attribute, name in steps:
        traced(owner, attribute, name)


_install()
__all__ = ["application"]
