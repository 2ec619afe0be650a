"""What charging sessions tell the apps above them (docs/architecture.md, "Hooks").

Billing and sites build on sessions, so sessions cannot call them: they send these signals, and
billing and sites connect their receivers in their ``AppConfig.ready`` (``<app>/receivers.py``).
Receivers run synchronously in the session's transaction (on the gateway, the commit group's),
before the charger is answered; one that raises fails the write, and the charger's message, as a
direct call would.
"""

from __future__ import annotations

from django.dispatch import Signal

# What a charger draws may have changed: a session started or ended, or meter values came.
# Keyword arguments: ``charge_point_id`` (the OCPP identity) or ``charge_point_pk``; ``profile``:
# (purpose, id, stack level) of the charging profile the charger accepted, when one is why.
# Receiver: sites (recompute the charger's site after the commit).
# Both are sent by the group commit's batch thread for most session messages: their receivers are
# looked up once per sender, not at every send (``use_caching``: connect and disconnect clear it).
charger_draw_changed = Signal(use_caching=True)

# A session ended (or was ended again, by a late event or a reconciliation), after its energy,
# times and anomalies were saved. Keyword argument: ``transaction``. A receiver may return the
# session's total cost (a ``Decimal``, in its currency's units), which a 2.0.1 charger is told
# (TransactionEventResponse ``totalCost``); None: it has none (no tariff priced it).
# Receiver: billing (write the session's billing record; its total).
transaction_ended = Signal(use_caching=True)

# What an app above calls a charging profile the CSMS believes a charger holds, in a warning about it
# (``charging_profile_conflicts``). Keyword argument: ``profile`` (an ``InstalledChargingProfile``).
# A receiver returns a short name ("the failsafe default of site 'Depot'") or None: not one of its own.
# Receiver: sites (its members' failsafe TxDefaultProfiles).
charging_profile_named = Signal()
