"""The quirks a charger model's profile (``ChargerModelProfile.quirks``) may enable, by name.

The gateway applies them (ocpp_gateway/quirks.py); the admin offers them on a profile's page.
"""

from __future__ import annotations

STRIP_IDTAG_SUFFIX = "strip_idtag_suffix"
UNIT_ALIASES = "unit_aliases"
FORMATION_VIOLATION_SPELLING = "formation_violation_spelling"

QUIRKS: dict[str, str] = {
    STRIP_IDTAG_SUFFIX: "idTags lose trailing whitespace and NUL characters, and the profile's suffix pattern.",
    UNIT_ALIASES: "Units spelled in another case or as an alias ('KWH', 'kwh', '%') become the OCPP spelling.",
    FORMATION_VIOLATION_SPELLING: "CALLERRORs from the charger with either FormatViolation spelling are recorded "
    "with the spelling of the connection's OCPP version.",
}
