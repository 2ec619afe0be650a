from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_datetime

from chargepoints.models import ChargePoint
from ocpp_gateway.traces import charge_point_trace


def _moment(value: str) -> datetime:
    moment = parse_datetime(value)
    if moment is None or moment.tzinfo is None:
        raise CommandError(f"{value!r} is not an ISO 8601 time with an offset, e.g. 2026-11-25T10:00:00Z")
    return moment


class Command(BaseCommand):
    help = "Export a charger's OCPP message log as a trace file (JSON Lines) for replay_trace."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("charge_point_id")
        parser.add_argument("--since", type=_moment, help="ISO 8601 time; default: the oldest logged frame")
        parser.add_argument("--until", type=_moment, help="ISO 8601 time (exclusive); default: now")
        parser.add_argument("--output", type=Path, help="file to write; default: standard output")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            trace = charge_point_trace(
                charge_point_id=options["charge_point_id"], since=options["since"], until=options["until"]
            )
        except ChargePoint.DoesNotExist:
            raise CommandError(f"No charge point {options['charge_point_id']!r}.") from None
        if options["output"]:
            options["output"].write_text(trace.to_jsonl())
            self.stderr.write(f"{len(trace.frames)} frames written to {options['output']}")
        else:
            self.stdout.write(trace.to_jsonl(), ending="")
