from __future__ import annotations

from ocpp.v201 import ChargePoint as V201ChargePoint

from ocpp_gateway.router import OcppRouter
from ocpp_gateway.v201.availability import AvailabilityHandlers
from ocpp_gateway.v201.device_model import DeviceModelHandlers
from ocpp_gateway.v201.firmware import FirmwareHandlers
from ocpp_gateway.v201.local_auth_list import LocalAuthListHandlers
from ocpp_gateway.v201.notifications import NotificationHandlers
from ocpp_gateway.v201.provisioning import ProvisioningHandlers
from ocpp_gateway.v201.remote_control import RemoteControlHandlers
from ocpp_gateway.v201.reservations import ReservationHandlers
from ocpp_gateway.v201.smart_charging import SmartChargingHandlers
from ocpp_gateway.v201.transactions import TransactionHandlers


class V201Router(
    ProvisioningHandlers,
    DeviceModelHandlers,
    AvailabilityHandlers,
    TransactionHandlers,
    RemoteControlHandlers,
    LocalAuthListHandlers,
    ReservationHandlers,
    SmartChargingHandlers,
    FirmwareHandlers,
    NotificationHandlers,
    OcppRouter,
    V201ChargePoint,
):
    """Every OCPP 2.0.1 action the CSMS answers, and every answer to a command it sends that charger state
    follows (``command_routes``), grouped by functional block."""
