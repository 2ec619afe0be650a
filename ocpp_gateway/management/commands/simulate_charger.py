"""``manage.py simulate_charger CP-1``: a charger to try the CSMS with, printing every frame."""

from __future__ import annotations

import asyncio
import math
import os
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from websockets.exceptions import InvalidStatus, WebSocketException

from chargepoints.identity import IDENTITY_RULE, charge_point_id_validate
from chargepoints.models import ChargePoint
from chargepoints.services import charge_point_register
from charging.models import IdTag
from charging.services.authorization import id_tag_save
from ocpp_gateway.simulator.base import SimulatorOptions
from ocpp_gateway.simulator.runner import (
    SIMULATORS,
    ConnectionLost,
    charger_simulate,
    charger_url,
)

# The longest id tag each version's Authorize and session messages carry (1.6 idTag CiString20Type,
# 2.0.1 IdTokenType.idToken identifierString of 36).
ID_TAG_MAX_LENGTH = {"1.6": 20, "2.0.1": 36}


class Command(BaseCommand):
    help = (
        "Connect a simulated charger: it boots, heartbeats, reports its connectors, runs charging sessions"
        " with meter values and answers the CSMS's commands (remote start/stop, Reset, ChangeAvailability,"
        " TriggerMessage, SetChargingProfile, GetConfiguration/GetVariables, GetBaseReport, UpdateFirmware,"
        " GetDiagnostics/GetLog, ...), printing every frame. Files move only to and from this machine."
        " It exits after --sessions sessions (0: on Ctrl-C)."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # --version names the OCPP version here, replacing Django's own --version.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("charge_point_id")
        parser.add_argument("--version", dest="ocpp_version", choices=sorted(SIMULATORS), default="1.6")
        # Where ``make run PORT=...`` listens, when the same PORT is set here.
        default_url = f"ws://127.0.0.1:{os.environ.get('PORT') or '8000'}"
        parser.add_argument("--url", default=default_url, help="The CSMS (default ws://127.0.0.1:$PORT, PORT 8000).")
        parser.add_argument(
            "--sessions", type=int, default=1, help="Sessions to run before exiting; 0 runs until Ctrl-C."
        )
        parser.add_argument(
            "--remote", action="store_true", help="Wait for remote starts from the CSMS instead of starting sessions."
        )
        parser.add_argument(
            "--register", action="store_true", help="Register the charger and its id tag in the database if missing."
        )
        parser.add_argument("--id-tag", default="SIM-TAG-1", help="The id tag its own sessions use.")
        parser.add_argument("--password", help="HTTP Basic password (OCPP security profile 1).")
        parser.add_argument("--connectors", type=int, default=1)
        parser.add_argument("--meter-values", type=int, default=3, help="Meter values per session.")
        parser.add_argument("--meter-interval", type=float, default=1.0, help="Seconds between meter values (above 0).")
        parser.add_argument("--wh-per-sample", type=int, default=1000, help="Energy per meter value, Wh (at least 1).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["sessions"] < 0 or options["connectors"] < 1 or options["meter_values"] < 0:
            raise CommandError("--sessions and --meter-values must be at least 0, --connectors at least 1.")
        # 0 or less sent meter values without a pause (a 1.6 MeterValueSampleInterval of 0: none
        # sampled) and a meter standing still or running backwards; infinity none at all.
        if not (math.isfinite(options["meter_interval"]) and options["meter_interval"] > 0):
            raise CommandError("--meter-interval must be a number of seconds above 0.")
        if options["wh_per_sample"] < 1:
            raise CommandError("--wh-per-sample must be at least 1 (Wh).")
        charge_point_id = options["charge_point_id"]
        # Refused before --register: a charger registered with an id no URL routes ("CP 1") was then
        # refused at its handshake as "unknown (use --register)", and stayed in the fleet.
        try:
            charge_point_id_validate(charge_point_id)
        except ValidationError:
            raise CommandError(f"{charge_point_id!r} is not a charger id: {IDENTITY_RULE}") from None
        # A longer tag was registered, then its first Authorize broke the schema: a traceback.
        longest = ID_TAG_MAX_LENGTH[options["ocpp_version"]]
        if not 1 <= len(options["id_tag"]) <= longest:
            raise CommandError(f"--id-tag must be 1 to {longest} characters in OCPP {options['ocpp_version']}.")
        if options["register"]:
            self._register(charge_point_id, options["id_tag"])
        url = charger_url(options["url"], ocpp_version=options["ocpp_version"], charge_point_id=charge_point_id)
        simulator_options = SimulatorOptions(
            sessions=options["sessions"],
            wait_for_remote_start=options["remote"],
            id_tag=options["id_tag"],
            connectors=options["connectors"],
            meter_values=options["meter_values"],
            meter_interval=options["meter_interval"],
            wh_per_sample=options["wh_per_sample"],
            echo=self.stdout.write,
        )
        self.stdout.write(f"{charge_point_id}: connecting to {url} (OCPP {options['ocpp_version']})")
        try:
            done = asyncio.run(
                charger_simulate(
                    charge_point_id=charge_point_id,
                    ocpp_version=options["ocpp_version"],
                    url=url,
                    options=simulator_options,
                    password=options["password"],
                )
            )
        except KeyboardInterrupt:
            self.stdout.write(f"{charge_point_id}: interrupted, disconnected")
            return
        except InvalidStatus as error:
            raise CommandError(
                f"The CSMS refused the handshake (HTTP {error.response.status_code}): the charger is unknown"
                " (use --register), decommissioned, or its password is wrong. The server log says which."
            ) from None
        except (OSError, WebSocketException, ConnectionLost) as error:
            raise CommandError(f"{charge_point_id}: {error}") from None
        self.stdout.write(self.style.SUCCESS(f"{charge_point_id}: {done} session(s) done, disconnected"))

    def _register(self, charge_point_id: str, id_tag: str) -> None:
        if not ChargePoint.objects.filter(charge_point_id=charge_point_id).exists():
            charge_point_register(
                charge_point_id=charge_point_id, heartbeat_interval=settings.CSMS_DEFAULT_HEARTBEAT_INTERVAL
            )
            self.stdout.write(f"{charge_point_id}: registered")
        if not IdTag.objects.filter(id_tag__iexact=id_tag).exists():
            id_tag_save(id_tag=id_tag, description="simulate_charger")
            self.stdout.write(f"{charge_point_id}: id tag {id_tag} registered (Accepted)")
