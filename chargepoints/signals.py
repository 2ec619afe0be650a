"""What the fleet tells the apps above it (docs/architecture.md, "Hooks").

``chargepoints`` is the lowest domain app: sessions, commands and sites build on it, so it cannot
call them. It sends these signals instead, and each app that acts on one connects its receiver in
its ``AppConfig.ready`` (``<app>/receivers.py``). Receivers run synchronously, in the sender's
transaction; one that raises fails the write (and the charger's message) as a direct call would.
"""

from __future__ import annotations

from django.dispatch import Signal

# A StatusNotification that is newer than the stored status, inside ``connector_status_set``'s
# transaction (the charger's and the connector's rows locked), before the status is stored.
# Keyword arguments: ``charge_point`` (its pk, id and last boot loaded), ``connector_id``,
# ``evse_id`` (2.0.1; None in 1.6), ``status`` (OCPP's word), ``previous_status`` (the connector's
# stored one, "" for its first), ``charging`` (whether the EV draws
# power; None: the status does not say), ``at`` (the notification's time, judged) and ``asked``
# (what its batch's status write asked of it for the receivers, ``status_writes.StatusWrite.condition_held``;
# None: not asked).
# Receiver: charging (a session's idle time; Available after a reboot ends what the reboot cut;
# Faulted or Unavailable ends the reservations there, as does a 1.6 Reserved connector gone Available).
connector_status_reported = Signal()

# A StatusNotification older than the stored status (a queued replay: a charger back online sends
# its current status, then what it queued offline), which the connector does not take, that says
# whether the EV draws power, inside ``connector_status_set``'s transaction (the charger's row
# locked). Keyword arguments: ``charge_point``, ``connector_id``, ``evse_id``, ``charging`` and
# ``at`` (as above), and ``newer_received_at`` (when the stored, newer status was received).
# Receiver: charging (the idle time of the sessions open on the connector).
connector_status_replayed = Signal()

# An operator changed a charger (the API's update, the admin's commissioning buttons), after the
# change was saved. Keyword arguments: ``charge_point``, ``previous_state`` (its lifecycle state
# before), ``previous_interval`` (its heartbeat interval before, s), ``interval_given`` (optional: the
# change gave a heartbeat interval, changed or not), ``api_key`` (the API's
# ``ApiKey``, or None) and ``user_id`` (the admin's user, or None). A receiver returns the fields it
# adds to the API's answer (a dict, possibly empty).
# Receiver: commands (wake a commissioned charger; push a new heartbeat interval).
charge_point_changed = Signal()

# The rate units chargers take a charging profile's limit in changed, as their configuration gave
# them (``rate_units.charging_rate_units_reported``), after the write committed. Keyword arguments:
# ``charge_point_pks`` (the chargers') and ``units`` (now theirs: "A", "W", "A,W" or "": not known).
# Receiver: sites (a charger found to take W alone, flagged for refusing the profiles it was sent in A
# before its units were known, is steered again).
charging_rate_units_changed = Signal()
