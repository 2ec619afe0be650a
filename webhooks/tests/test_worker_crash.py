"""A Celery worker killed (SIGKILL) in the middle of a POST: the delivery is sent again, not lost."""

from __future__ import annotations

import http.server
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from conftest import eventually
from webhooks.models import DeliveryState, WebhookDelivery
from webhooks.services import webhook_event_emit, webhook_subscription_create

pytestmark = pytest.mark.django_db(transaction=True)

LEASE_SECONDS = 3


@dataclass
class HoldingReceiver:
    """Answers every POST with 200, except the first: that one is held open until released."""

    url: str = ""
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def holding_receiver() -> Iterator[HoldingReceiver]:
    receiver = HoldingReceiver()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
            if len(receiver.requests) == 1:
                receiver.release.wait(timeout=30)  # the worker is killed meanwhile
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.release.set()
    server.shutdown()
    server.server_close()


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants (the worker forks its embedded beat)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        children += [int(child) for child in (task / "children").read_text().split()]
    return [pid] + [descendant for child in children for descendant in process_tree(child)]


def kill_tree(pid: int) -> None:
    for member in process_tree(pid):
        os.kill(member, signal.SIGKILL)


async def test_a_worker_killed_mid_post_leaves_the_delivery_to_the_next_worker(
    daphne, celery_worker, holding_receiver, settings
):
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    worker_env = {
        "CSMS_WEBHOOK_ALLOW_PRIVATE": "1",
        "CSMS_WEBHOOK_CLAIM_LEASE_SECONDS": str(LEASE_SECONDS),
        "CSMS_WEBHOOK_SWEEP_INTERVAL": "1",
    }
    doomed = celery_worker(**worker_env)
    await sync_to_async(webhook_subscription_create)(url=holding_receiver.url, events=["charge_point.online"])
    [delivery] = await sync_to_async(webhook_event_emit)(
        event_type="charge_point.online", data={"charge_point_id": "CP-CRASH", "reason": "connected"}
    )

    await eventually(lambda: holding_receiver.requests, timeout=30, interval=0.1)  # the worker is mid-POST
    kill_tree(doomed.pid)
    doomed.wait(timeout=10)
    killed_at = time.monotonic()
    holding_receiver.release.set()  # the held request's answer goes nowhere: its worker is gone
    assert (await WebhookDelivery.objects.aget(id=delivery.id)).state == DeliveryState.PENDING

    celery_worker(**worker_env)

    async def delivered() -> bool:
        return (await WebhookDelivery.objects.aget(id=delivery.id)).state == DeliveryState.DELIVERED

    await eventually(delivered, timeout=60, interval=0.2)
    print(f"delivered {time.monotonic() - killed_at:.1f} s after the kill (lease {LEASE_SECONDS} s)")
    stored = await WebhookDelivery.objects.aget(id=delivery.id)
    assert stored.attempts == 1  # the killed attempt was never recorded
    ids = [json.loads(body)["id"] for _, body in holding_receiver.requests]
    assert len(ids) == 2  # the held POST, then the one that delivered: at least once, at most twice
    assert set(ids) == {str(delivery.event_id)}
    assert {headers["x-dynamo-event-id"] for headers, _ in holding_receiver.requests} == {str(delivery.event_id)}
