"""Admin pages of the chargepoints app, one module per area."""

from chargepoints.admin import fleet, message_log, profiles, security_events

__all__ = ["fleet", "message_log", "profiles", "security_events"]
