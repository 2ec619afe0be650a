"""What a simulated charger does, whatever its OCPP version.

1. Boot (again after the interval while the CSMS answers Pending), report every connector, heartbeat.
2. Run sessions one after another: a queued remote start first, else (unless told to wait for
   remote starts) one of its own with its id tag. A session authorizes, starts, sends meter values,
   and stops early on a remote stop, a reset or an availability change.
3. Exit after the requested number of sessions (0: serve commands until interrupted).
4. Answer the CSMS's commands the same way in both versions (the version modules translate the
   fields): remote start and stop, availability, triggers, charging profiles, reservations, local
   lists, firmware updates and diagnostics or log uploads. Files move over HTTP only when the
   location is on this machine (loopback); another location is reported done without a transfer.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from ocpp_gateway.simulator.transfers import transfer

TRIGGERABLE = {"BootNotification", "Heartbeat", "StatusNotification", "MeterValues"}
Notify = Callable[[str], Awaitable[None]]


def accepted_status(accepted: bool) -> str:
    return "Accepted" if accepted else "Rejected"


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class SimulatorOptions:
    """``sessions``: how many before exiting (0: until interrupted); ``wh_per_sample``: the meter
    runs fast, so that a short session has a readable bill."""

    sessions: int = 1
    wait_for_remote_start: bool = False
    id_tag: str = "SIM-TAG-1"
    connectors: int = 1
    meter_values: int = 3
    meter_interval: float = 1.0
    wh_per_sample: int = 1000
    vendor: str = "Dynamo"
    model: str = "Simulator"
    echo: Callable[[str], None] = print


@dataclass
class SessionRequest:
    connector_id: int
    id_tag: str
    remote_start_id: int | None = None


@dataclass
class Session:
    request: SessionRequest
    transaction_id: Any = None
    meter_wh: int = 0
    stop_reason: str = ""
    stopped: asyncio.Event = field(default_factory=asyncio.Event)


class SimulatedCharger(ABC):
    """The version-neutral behaviour, mixed in before the version's ChargePoint, which provides
    the ``send_*`` messages (``send_boot`` answers whether the boot was accepted, and the interval)."""

    options: SimulatorOptions
    id: str

    def simulator_setup(self, options: SimulatorOptions) -> None:
        self.options = options
        self.heartbeat_interval = 60
        self.meter_wh = 0
        self.session: Session | None = None
        self.inoperative: set[int] = set()
        self.remote_starts: asyncio.Queue[SessionRequest] = asyncio.Queue()
        self.sessions_done = 0
        self.charging_profiles: dict[int, dict[str, Any]] = {}
        self.reservations: set[int] = set()
        self.local_list_version = 0

    async def route_message(self, raw_msg: str) -> None:
        self.options.echo(f"{self.id} <- {raw_msg}")
        await super().route_message(raw_msg)  # type: ignore[misc]

    async def _send(self, message: str) -> None:
        self.options.echo(f"{self.id} -> {message}")
        await super()._send(message)  # type: ignore[misc]

    async def simulate(self) -> None:
        """Boot, then run the sessions; returns when they are done."""
        await self.boot()
        heartbeats = asyncio.create_task(self._heartbeat_forever())
        try:
            while not self.options.sessions or self.sessions_done < self.options.sessions:
                request = await self._next_session_request()
                await self.run_session(request)
                self.sessions_done += 1
        finally:
            heartbeats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeats

    async def boot(self) -> None:
        while True:
            accepted, interval = await self.send_boot()
            if accepted:
                break
            await asyncio.sleep(max(1, min(interval, 60)))
        self.heartbeat_interval = interval or self.heartbeat_interval
        await self.send_heartbeat()
        for connector_id in range(1, self.options.connectors + 1):
            await self.send_status(connector_id, self._idle_status(connector_id))

    async def _heartbeat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            await self.send_heartbeat()

    async def _next_session_request(self) -> SessionRequest:
        if self.options.wait_for_remote_start or not self.remote_starts.empty():
            return await self.remote_starts.get()
        await asyncio.sleep(self.options.meter_interval)
        return SessionRequest(connector_id=1, id_tag=self.options.id_tag)

    async def run_session(self, request: SessionRequest) -> None:
        if request.remote_start_id is None and not await self.send_authorize(request.id_tag):
            return
        session = Session(request=request, meter_wh=self.meter_wh)
        self.session = session
        try:
            await self.send_status(request.connector_id, "Preparing")
            if not await self.send_start(session):
                return
            await self.send_status(request.connector_id, "Charging")
            for _ in range(self.options.meter_values):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(session.stopped.wait(), self.options.meter_interval)
                if session.stopped.is_set():
                    break
                self.meter_wh += self.options.wh_per_sample
                session.meter_wh = self.meter_wh
                await self.send_meter_values(session)
            await self.send_stop(session)
        finally:
            self.session = None
            await self.send_status(request.connector_id, self._idle_status(request.connector_id))

    def stop_session(self, reason: str) -> bool:
        """Ask the running session to stop; False when there is none."""
        if self.session is None:
            return False
        self.session.stop_reason = reason
        self.session.stopped.set()
        return True

    def can_start(self, connector_id: int) -> bool:
        return self.session is None and connector_id not in self.inoperative and connector_id <= self.options.connectors

    def _idle_status(self, connector_id: int) -> str:
        return "Unavailable" if connector_id in self.inoperative else "Available"

    async def set_availability(self, connector_ids: list[int], operative: bool) -> None:
        for connector_id in connector_ids:
            (self.inoperative.discard if operative else self.inoperative.add)(connector_id)
            if self.session is None or self.session.request.connector_id != connector_id:
                await self.send_status(connector_id, self._idle_status(connector_id))

    async def reset(self, stop_reason: str = "SoftReset") -> None:
        """Stop the session (if any) with ``stop_reason``, then boot again, as a charger does after
        its restart."""
        self.stop_session(stop_reason)
        await self.reset_when_idle()

    async def reset_when_idle(self) -> None:
        """Boot again once no session runs (2.0.1 OnIdle: the session is left to end)."""
        while self.session is not None:
            await asyncio.sleep(0.05)
        await self.boot()

    def has_connector(self, connector_id: int | None) -> bool:
        """Whether a command's connector (1.6) or EVSE (2.0.1) is one of this charger's (0 or none: the
        whole charger). A real charger refuses a command naming one it does not have, and never
        reports it."""
        return not connector_id or 1 <= connector_id <= self.options.connectors

    def connector_ids(self, connector_id: int | None) -> list[int]:
        """The connectors a command names: 0 or none is the whole charger."""
        return list(range(1, self.options.connectors + 1)) if not connector_id else [connector_id]

    # --- Answers shared by both versions (True: Accepted) ----------------------------------------

    async def remote_start(self, connector_id: int, id_tag: str, remote_start_id: int) -> bool:
        """Queue a remote start; refused while charging or on an inoperative or unknown connector."""
        if not self.can_start(connector_id):
            return False
        await self.remote_starts.put(
            SessionRequest(connector_id=connector_id, id_tag=id_tag, remote_start_id=remote_start_id)
        )
        return True

    def remote_stop(self, transaction_id: Any) -> bool:
        running = self.session is not None and self.session.transaction_id == transaction_id
        return running and self.stop_session("Remote")

    def availability_status(self, connector_ids: list[int], operative: bool) -> str:
        """``Scheduled`` when a session runs on a connector to be made inoperative, else ``Accepted``."""
        busy = self.session is not None and self.session.request.connector_id in connector_ids
        return "Scheduled" if busy and not operative else "Accepted"

    async def send_triggered(self, requested_message: str, connector_id: int | None) -> None:
        """Send what TriggerMessage asked for (one of TRIGGERABLE), per connector where it is per connector."""
        if requested_message == "BootNotification":
            await self.send_boot()
        elif requested_message == "Heartbeat":
            await self.send_heartbeat()
        for each in self.connector_ids(connector_id):
            if requested_message == "StatusNotification":
                busy = self.session is not None and self.session.request.connector_id == each
                await self.send_status(each, "Charging" if busy else self._idle_status(each))
            elif requested_message == "MeterValues":
                await self.send_triggered_meter_values(each)

    def charging_profile_set(self, profile_id: int, profile: dict[str, Any]) -> bool:
        self.charging_profiles[profile_id] = profile
        return True

    def charging_profile_clear(self, profile_id: int | None) -> bool:
        """Clear one profile, or all with no id; False when there was nothing to clear."""
        if profile_id is None:
            cleared = bool(self.charging_profiles)
            self.charging_profiles.clear()
            return cleared
        return self.charging_profiles.pop(profile_id, None) is not None

    def reserve(self, reservation_id: int, connector_id: int | None) -> bool:
        """False when the connector is busy or inoperative (the caller answers a connector it does
        not have, ``has_connector``, first)."""
        if not self.can_start(connector_id or 1):
            return False
        self.reservations.add(reservation_id)
        return True

    def reservation_cancel(self, reservation_id: int) -> bool:
        known = reservation_id in self.reservations
        self.reservations.discard(reservation_id)
        return known

    async def firmware_install(self, location: str, notify: Notify) -> None:
        """Download (from this machine only), install, and report each step as a real charger does:
        Downloading, Downloaded (or DownloadFailed), Installing, Installed."""
        await notify("Downloading")
        try:
            size = len(await transfer(location, echo=self._echo_note))
        except OSError as error:
            self._echo_note(f"firmware download from {location} failed: {error}")
            await notify("DownloadFailed")
            return
        self._echo_note(f"firmware downloaded ({size} bytes)")
        for status in ("Downloaded", "Installing", "Installed"):
            await notify(status)

    def _echo_note(self, note: str) -> None:
        self.options.echo(f"{self.id}: {note}")

    async def diagnostics_upload(self, location: str, file_name: str, notify: Notify) -> None:
        """Upload a small log (to this machine only) and report Uploading, then Uploaded or UploadFailed."""
        await notify("Uploading")
        body = f"{self.id}: simulated diagnostics, {utc_now()}\n".encode()
        try:
            await transfer(f"{location.rstrip('/')}/{quote(file_name)}", body, echo=self._echo_note)
        except OSError as error:
            self._echo_note(f"upload to {location} failed: {error}")
            await notify("UploadFailed")
            return
        await notify("Uploaded")

    @abstractmethod
    async def send_boot(self) -> tuple[bool, int]: ...

    @abstractmethod
    async def send_heartbeat(self) -> None: ...

    @abstractmethod
    async def send_status(self, connector_id: int, status: str) -> None: ...

    @abstractmethod
    async def send_authorize(self, id_tag: str) -> bool: ...

    @abstractmethod
    async def send_start(self, session: Session) -> bool: ...

    @abstractmethod
    async def send_meter_values(self, session: Session) -> None: ...

    @abstractmethod
    async def send_stop(self, session: Session) -> None: ...

    @abstractmethod
    async def send_triggered_meter_values(self, connector_id: int) -> None: ...
