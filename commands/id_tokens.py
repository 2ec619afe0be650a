"""Remote start guard: the CSMS sends a remote start for any token, but says when it would not
authorize that token itself (unknown, Blocked, Expired): the session would be flagged
``unauthorized_token`` and billed for review."""

from __future__ import annotations

from typing import Any

from charging import selectors
from charging.models import AuthorizationStatus

REMOTE_START_COMMANDS = frozenset({"remote_start_transaction", "request_start_transaction"})


def remote_start_warnings(*, command: str, body: dict[str, Any]) -> list[str]:
    """Warnings for a remote start body (snake_case, either version) naming a token that is not Accepted."""
    if command not in REMOTE_START_COMMANDS:
        return []
    token = body.get("id_token") if command == "request_start_transaction" else None
    id_tag = token.get("id_token") if isinstance(token, dict) else body.get("id_tag")
    token_type = str(token.get("type", "")) if isinstance(token, dict) else ""
    if not isinstance(id_tag, str):
        return []
    status = selectors.id_tag_authorize(id_tag=id_tag, token_type=token_type).status
    if status == AuthorizationStatus.ACCEPTED:
        return []
    verdict = "is not known to the CSMS (Invalid)" if status == AuthorizationStatus.INVALID else f"is {status}"
    return [f"Id tag {id_tag!r} {verdict}; the session would be flagged unauthorized_token."]
