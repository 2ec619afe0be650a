from __future__ import annotations

from ocpp.v16 import ChargePoint as V16ChargePoint

from ocpp_gateway.router import OcppRouter
from ocpp_gateway.v16.availability import AvailabilityHandlers
from ocpp_gateway.v16.configuration import ConfigurationHandlers
from ocpp_gateway.v16.firmware import FirmwareHandlers
from ocpp_gateway.v16.local_auth_list import LocalAuthListHandlers
from ocpp_gateway.v16.notifications import NotificationHandlers
from ocpp_gateway.v16.provisioning import ProvisioningHandlers
from ocpp_gateway.v16.remote_control import RemoteControlHandlers
from ocpp_gateway.v16.reservations import ReservationHandlers
from ocpp_gateway.v16.smart_charging import SmartChargingHandlers
from ocpp_gateway.v16.transactions import TransactionHandlers


class V16Router(
    ProvisioningHandlers,
    ConfigurationHandlers,
    AvailabilityHandlers,
    TransactionHandlers,
    RemoteControlHandlers,
    LocalAuthListHandlers,
    ReservationHandlers,
    SmartChargingHandlers,
    FirmwareHandlers,
    NotificationHandlers,
    OcppRouter,
    V16ChargePoint,
):
    """Every OCPP 1.6 action the CSMS answers, and every answer to a command it sends that charger state
    follows (``command_routes``), grouped by functional block."""
