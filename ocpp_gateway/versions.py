"""The OCPP versions the gateway speaks, and the router that answers each one's CALLs."""

from __future__ import annotations

from ocpp_gateway.router import OcppRouter
from ocpp_gateway.v16.router import V16Router
from ocpp_gateway.v201.router import V201Router

ROUTERS: dict[str, type[OcppRouter]] = {"1.6": V16Router, "2.0.1": V201Router}
