from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ocpp_gateway.traces import Trace, replay_trace


class Command(BaseCommand):
    help = (
        "Replay a trace file's charger side against a running gateway and report answers that differ."
        " The gateway records it like a real charger (sessions, billing records, webhooks): replay into a"
        " scratch server and database, never production."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("trace", type=Path)
        parser.add_argument("--url", default="ws://127.0.0.1:8000", help="the gateway, ws:// or wss://")
        parser.add_argument("--charge-point-id", help="replay as another charger than the one recorded")

    def handle(self, *args: Any, **options: Any) -> None:
        trace = Trace.from_jsonl(options["trace"].read_text())
        if options["charge_point_id"]:
            trace.charge_point_id = options["charge_point_id"]
        result = asyncio.run(replay_trace(trace, url=options["url"].rstrip("/")))
        for mismatch in result.mismatches:
            self.stdout.write(f"MISMATCH {mismatch}")
        self.stdout.write(f"{result.exchanges} exchanges replayed, {len(result.mismatches)} mismatches")
        if result.mismatches:
            raise CommandError("the gateway answered differently from the trace")
