"""The command RPC, the gateway's side (the caller's is ``commands.rpc``): the consumer holding a
charger's socket serves the ``ocpp.call`` requests of the channel layer (``consumers.OcppConsumer``)."""

from __future__ import annotations

# Seconds the consumer waits for the charger's answer before acknowledging a CALL; well below the
# caller's commands.rpc.ACK_TIMEOUT, so that a live process always acknowledges in time.
ACK_DELAY = 0.5
# Seconds before the caller's ``ack_by`` under which a CALL not yet acknowledged is dropped unsent
# (the acknowledgement could reach the caller after it gave up); also how far the processes' clocks
# may disagree (NTP) without a command dropped for it.
ACK_MARGIN = 0.25
