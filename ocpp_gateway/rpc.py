"""The command RPC, the gateway's side (the caller's is ``commands.rpc``): the consumer holding a
charger's socket serves the ``ocpp.call`` requests of the channel layer (``consumers.OcppConsumer``)."""

from __future__ import annotations

# Seconds the consumer waits for the charger's answer before acknowledging a CALL; well below the
# caller's commands.rpc.ACK_TIMEOUT, so that a live process always acknowledges in time.
ACK_DELAY = 0.5
