"""The API schema's error answers: every operation documents the errors it can answer, in the one
error shape of ``kernel.api_errors`` (the README's API section and its error table).

``ApiSchema`` is the API's drf-spectacular schema class (``DEFAULT_SCHEMA_CLASS``). Beside the
success answer an operation documents, it lists: 401 (no or an invalid key), 406, 429, 500 and 503
(``DatabaseUnavailable``) for all; 400 for one that reads a body or query parameters (``ParseError``,
``ValidationError`` with ``details`` per field; every list, which refuses a query parameter it does not
read), 413 and 415 for one that reads a body; 403
(``ReadOnlyApiKey``) for one that changes something; 404 for one that names an object in its path,
or a list (a page after the last); and each status a view names in ``api_error_statuses``, keyed
by HTTP method or viewset action (409 ``Conflict``; the outcomes of a command sent to a charger,
``COMMAND_ERROR_STATUSES``), e.g. ``{"create": (409,)}``.
"""

from __future__ import annotations

import decimal
from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent

from kernel import payload_case, schemas

ERROR_COMPONENT = "Error"
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every error under /api/ has this shape (further keys name what the error is about).",
    "properties": {
        "error": {
            "type": "string",
            "description": "The code: ValidationError, NotFound, Conflict, ... or the charger's OCPP"
            " status or CALLERROR code (Rejected, NotSupported, ...).",
        },
        "message": {"type": "string"},
        "charge_point_id": {"type": "string"},
        "details": {
            "type": "object",
            "additionalProperties": True,
            "description": "Validation errors: messages per field, by its snake_case path"
            " (cs_charging_profiles.stack_level).",
        },
        "response": {
            "type": "object",
            "additionalProperties": True,
            "description": "The charger's answer (a refused command, an answer breaking the OCPP schema).",
        },
        "command_id": {"type": "string"},
        "detail": {"type": "string", "description": "401 only: DRF's message, kept for older clients."},
    },
    "required": ["error", "message"],
    "additionalProperties": True,
}
# What each status means across the API (an endpoint may answer a subset).
ERROR_DESCRIPTIONS = {
    400: "ValidationError (details per field or parameter), ParseError (a body that is not JSON)",
    401: "NotAuthenticated / AuthenticationFailed: no or an invalid API key",
    403: "ReadOnlyApiKey: a read-only key may not change anything nor send commands",
    404: "NotFound",
    406: "NotAcceptable: an Accept header without JSON, or a format query parameter other than json",
    409: "Conflict",
    413: "PayloadTooLarge: a body over 2.5 MB (RequestTooLarge: a firmware image over CSMS_FIRMWARE_MAX_BYTES)",
    415: "UnsupportedMediaType: a body of another media type than the operation reads"
    " (application/json; multipart/form-data for a firmware upload)",
    422: "IdempotencyKeyReused: the Idempotency-Key of another request (details.command_id names it)",
    429: "Throttled",
    500: "InternalServerError",
    501: "The charger answered CALLERROR NotSupported or NotImplemented",
    502: "The charger answered another CALLERROR, or InvalidResponse: an answer breaking the OCPP schema",
    503: "DatabaseUnavailable (with Retry-After); for a command also NotConnected, GatewayUnreachable",
    504: "Timeout: the charger did not answer within CSMS_OCPP_CALL_TIMEOUT",
}
# A command sent to a charger: a bad body (400), an unknown charger (404), refused (409 the charger's
# status, CommandInProgress, ChargePointPending, ChargePointDecommissioned), the idempotency key of
# another request (422), and the charger's outcomes.
COMMAND_ERROR_STATUSES = (400, 404, 409, 422, 501, 502, 503, 504)
_UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


class ApiSchema(AutoSchema):
    """drf-spectacular's AutoSchema with the error answers of each operation (module docstring)."""

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        self.registry.register_on_missing(
            ResolvedComponent(
                name=ERROR_COMPONENT, type=ResolvedComponent.SCHEMA, object=ERROR_COMPONENT, schema=ERROR_SCHEMA
            )
        )
        error = {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}}}}
        for status in sorted(self.error_statuses()):
            responses.setdefault(str(status), {**error, "description": ERROR_DESCRIPTIONS[status]})
        return responses

    def error_statuses(self) -> set[int]:
        statuses = {401, 406, 429, 500, 503}
        reads_body = self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None
        if reads_body:
            statuses |= {400, 413, 415}
        if self.method in _UNSAFE:
            statuses.add(403)
        is_list = self.method == "GET" and self._is_list_view()
        if is_list:  # an unknown query parameter (kernel.query_params), also of a list always whole
            statuses.add(400)
        if is_list and self._get_paginator() is not None:
            statuses.add(404)
        if "{" in self.path:
            statuses.add(404)
        if any(parameter.get("in") == "query" for parameter in self._get_parameters()):
            statuses.add(400)
        declared = getattr(self.view, "api_error_statuses", {})
        statuses |= {*declared.get(self.method, ()), *declared.get(getattr(self.view, "action", None), ())}
        return statuses


# JSON-schema keys of the OCPP schemas that OpenAPI 3.0's schema objects lack (or that say nothing
# to a client): the draft's own, the package's Java hints, the definitions (inlined where used).
_NOT_OPENAPI = frozenset(
    {"$schema", "$id", "id", "title", "javaType", "tsEnumNames", "comment", "definitions", "additionalItems"}
)


def ocpp_request_body_schema(*, ocpp_version: str, action: str) -> dict[str, Any]:
    """The OCPP JSON schema of ``action``'s request as the API takes it: an OpenAPI schema object
    with the field names in snake_case (``cs_charging_profiles.stack_level``) and the definitions
    inlined. What the CSMS checks beyond the schema (README, OCPP commands) is not in it."""
    root = schemas.request_schema(ocpp_version=ocpp_version, action=action)

    def converted(node: Any) -> Any:
        if isinstance(node, list):
            return [converted(item) for item in node]
        if not isinstance(node, dict):
            return float(node) if isinstance(node, decimal.Decimal) else node
        while "$ref" in node:
            node = root["definitions"][node["$ref"].rsplit("/", 1)[-1]]
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _NOT_OPENAPI:
                continue
            if key == "properties":
                out[key] = {payload_case.snake_name(name): converted(item) for name, item in value.items()}
            elif key == "required":
                out[key] = [payload_case.snake_name(name) for name in value]
            else:
                out[key] = converted(value)
        return out

    body: dict[str, Any] = converted(root)
    return body
