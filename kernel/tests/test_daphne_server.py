"""daphne's input queue, made small (kernel/daphne_server.py), keeps daphne's behaviour.

When the first test fails after an upgrade of daphne, compare its ``Server.create_application``
with ``kernel.daphne_server._create_application``, adapt the copy, and move the pin in
requirements.txt.
"""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import inspect
import textwrap
from pathlib import Path

import pytest

from kernel import daphne_server


def _body_without_docstring(function: ast.FunctionDef) -> str:
    body = function.body[1:] if isinstance(function.body[0], ast.Expr) else function.body
    return "\n".join(ast.unparse(statement) for statement in body)


def test_our_create_application_is_daphne_s_with_the_small_queue():
    spec = importlib.util.find_spec("daphne.server")  # read, not imported: importing installs a reactor
    assert spec is not None and spec.origin is not None
    module = ast.parse(Path(spec.origin).read_text())
    server = next(node for node in module.body if isinstance(node, ast.ClassDef) and node.name == "Server")
    daphne_s = next(
        node for node in server.body if isinstance(node, ast.FunctionDef) and node.name == "create_application"
    )
    ours = ast.parse(textwrap.dedent(inspect.getsource(daphne_server._create_application))).body[0]
    assert isinstance(ours, ast.FunctionDef)
    assert _body_without_docstring(ours).replace("InputQueue()", "asyncio.Queue()") == _body_without_docstring(daphne_s)


async def test_events_come_out_in_the_order_they_went_in_whether_or_not_a_get_waits():
    queue = daphne_server.InputQueue()
    waiting = queue.get()
    queue.put_nowait({"type": "websocket.connect"})
    queue.put_nowait({"type": "websocket.receive", "text": "1"})
    queue.put_nowait({"type": "websocket.receive", "text": "2"})
    assert await waiting == {"type": "websocket.connect"}
    assert [await queue.get(), await queue.get()] == [
        {"type": "websocket.receive", "text": "1"},
        {"type": "websocket.receive", "text": "2"},
    ]


async def test_a_cancelled_get_takes_no_event():
    queue = daphne_server.InputQueue()
    given_up = queue.get()
    given_up.cancel()
    later = queue.get()
    queue.put_nowait({"type": "websocket.disconnect", "code": 1000})
    assert await asyncio.wait_for(later, 1) == {"type": "websocket.disconnect", "code": 1000}


async def test_a_get_that_times_out_leaves_the_event_for_the_next_one():
    queue = daphne_server.InputQueue()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(queue.get(), 0.01)
    queue.put_nowait({"type": "http.disconnect"})
    assert await queue.get() == {"type": "http.disconnect"}
