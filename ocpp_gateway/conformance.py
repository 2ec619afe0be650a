"""The conformance matrix: every OCPP action, whether the gateway answers or sends it, and the tests that prove it.

It is read off the code rather than written by hand: inbound actions from the routers' ``@on``
handlers, outbound ones from the command catalog, proof from the test modules' syntax trees.
``manage.py conformance_matrix`` prints it; ``docs/conformance.md`` is its committed output.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ocpp.v16.enums import Action as V16Action
from ocpp.v201.enums import Action as V201Action

from commands import catalog
from kernel import payload_case
from ocpp_gateway.command_routes import version_routes
from ocpp_gateway.router import OcppRouter
from ocpp_gateway.versions import ROUTERS

ACTIONS = {"1.6": [a.value for a in V16Action], "2.0.1": [a.value for a in V201Action]}

# Who starts each exchange, per the specifications (OCPP 1.6 with the security whitepaper; 2.0.1 part 2).
CHARGER_INITIATED = {
    "1.6": {
        "Authorize",
        "BootNotification",
        "DataTransfer",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
        "Heartbeat",
        "LogStatusNotification",
        "MeterValues",
        "SecurityEventNotification",
        "SignCertificate",
        "SignedFirmwareStatusNotification",
        "StartTransaction",
        "StatusNotification",
        "StopTransaction",
    },
    "2.0.1": {
        "Authorize",
        "BootNotification",
        "ClearedChargingLimit",
        "DataTransfer",
        "FirmwareStatusNotification",
        "Get15118EVCertificate",
        "GetCertificateStatus",
        "Heartbeat",
        "LogStatusNotification",
        "MeterValues",
        "NotifyChargingLimit",
        "NotifyCustomerInformation",
        "NotifyDisplayMessages",
        "NotifyEVChargingNeeds",
        "NotifyEVChargingSchedule",
        "NotifyEvent",
        "NotifyMonitoringReport",
        "NotifyReport",
        "PublishFirmwareStatusNotification",
        "ReportChargingProfiles",
        "ReservationStatusUpdate",
        "SecurityEventNotification",
        "SignCertificate",
        "StatusNotification",
        "TransactionEvent",
    },
}
BOTH_WAYS = {"DataTransfer"}
_MAX_TESTS_LISTED = 3


@dataclass(frozen=True)
class MatrixRow:
    action: str
    direction: str
    handled: bool
    command: str | None
    tests: tuple[str, ...]
    handler: str = ""  # the module of the inbound handler, or of the handler of the answer to the command


def handled_actions(router: type[OcppRouter]) -> set[str]:
    """Actions a router answers: those of its ``@on`` handlers (its class's route map)."""
    return {str(action) for action in router.route_map}


def handler_modules(router: type[OcppRouter], root: Path) -> dict[str, str]:
    """Action -> the file (relative to ``root``) of the router's ``@on`` handler or of its ``@answer``
    handler for the answer to that command: where a newcomer reads how the CSMS treats the action."""

    def where(handler: Callable[..., object]) -> str:
        return str(Path(inspect.getfile(inspect.unwrap(handler))).resolve().relative_to(root.resolve()))

    modules = {action: where(handler) for action, handler in version_routes(router).answers.items()}
    modules |= {str(action): where(route.on) for action, route in router.route_map.items()}
    return modules


def offered_commands(version: str) -> dict[str, str]:
    """OCPP action -> the API command that sends it."""
    return {catalog.ocpp_action(command): command for command in catalog.COMMANDS[version]}


def _direction(version: str, action: str) -> str:
    if action in BOTH_WAYS:
        return "both"
    return "charger → CSMS" if action in CHARGER_INITIATED[version] else "CSMS → charger"


def _words(nodes: list[ast.AST]) -> set[str]:
    """The names, attribute names and strings that occur anywhere in ``nodes``."""
    words: set[str] = set()
    for inner in (found for node in nodes for found in ast.walk(node)):
        if isinstance(inner, ast.Constant) and isinstance(inner.value, str):
            words.add(inner.value)
        elif isinstance(inner, ast.Attribute):
            words.add(inner.attr)
        elif isinstance(inner, ast.Name):
            words.add(inner.id)
    return words


def _test_functions(root: Path) -> list[tuple[str, set[str]]]:
    """(node id, what it mentions) for every test function.

    What a test mentions is what its decorators and body mention, plus the contents of the
    module-level constants it names (parametrize tables such as ``V16_CASES``).
    """
    found = []
    for path in sorted(root.glob("*/tests/test_*.py")):
        if path.name == "test_conformance.py":
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        constants = {
            target.id: _words([statement.value])
            for statement in tree.body
            if isinstance(statement, ast.Assign)
            for target in statement.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"):
                words = _words([*node.decorator_list, *node.body])
                for name in words & constants.keys():
                    words |= constants[name]
                found.append((f"{path.relative_to(root)}::{node.name}", words))
    return found


def _proves_inbound(words: set[str], action: str) -> bool:
    quoted = f'"{action}"'
    return action in words or payload_case.snake_name(action) in words or any(quoted in word for word in words)


def _proves_outbound(words: set[str], version: str, command: str) -> bool:
    suffix = f"/{command}"
    return any(
        word == command or (word.endswith(suffix) and catalog.URL_PREFIX[version] in word) or word.startswith(suffix)
        for word in words
    ) and any(catalog.URL_PREFIX[version] in word for word in words)


def conformance_matrix(root: Path) -> dict[str, list[MatrixRow]]:
    tests = _test_functions(root)
    matrix: dict[str, list[MatrixRow]] = {}
    for version, actions in ACTIONS.items():
        handled = handled_actions(ROUTERS[version])
        handlers = handler_modules(ROUTERS[version], root)
        commands = offered_commands(version)
        rows = []
        for action in sorted(actions):
            command = commands.get(action)
            proof = [
                node_id
                for node_id, words in tests
                if (action in handled and _proves_inbound(words, action))
                or (command is not None and _proves_outbound(words, version, command))
            ]
            row = MatrixRow(action, _direction(version, action), action in handled, command, tuple(proof))
            rows.append(replace(row, handler=handlers.get(action, "")))
        matrix[version] = rows
    return matrix


def conformance_markdown(root: Path) -> str:
    lines = [
        "# OCPP conformance matrix",
        "",
        "Generated by `python manage.py conformance_matrix > docs/conformance.md` from the gateway's handler",
        "registry (`ocpp_gateway/v16/router.py`, `ocpp_gateway/v201/router.py`), the command catalog",
        "(`commands/catalog.py`) and the test modules; "
        "`ocpp_gateway/tests/test_conformance.py` fails when it is stale.",
        "",
        "- **Inbound**: the CSMS answers this CALL from a charger, or the CALLERROR it gets instead: `NotSupported`",
        "  for an action of the version the CSMS does not answer (any action not in these tables is `NotImplemented`).",
        "- **Outbound**: the API command that sends this CALL to a charger "
        "(`POST /api/v1/ocpp16/...` or `/ocpp201/...`).",
        "- **Handled in**: the module of the handler of the inbound CALL, or of the handler of the charger's answer",
        "  to the command when the CSMS's view of the charger follows it; the services it calls are named there.",
        f"- **Proved by**: up to {_MAX_TESTS_LISTED} tests that exercise it (the total in brackets).",
        "",
    ]
    for version, rows in conformance_matrix(root).items():
        inbound = sum(row.handled for row in rows)
        outbound = sum(row.command is not None for row in rows)
        lines += [
            f"## OCPP {version}",
            "",
            f"{len(rows)} actions: {inbound} answered inbound, {outbound} offered as commands.",
            "",
            "| Action | Initiated by | Inbound | Outbound | Handled in | Proved by |",
            "|---|---|---|---|---|---|",
        ]
        for row in rows:
            inbound_cell = "handled" if row.handled else "`NotSupported`"
            outbound_cell = (
                f"`{row.command}`" if row.command else ("—" if row.direction == "charger → CSMS" else "not yet")
            )
            listed = ", ".join(f"`{node_id}`" for node_id in row.tests[:_MAX_TESTS_LISTED])
            proof = f"{listed} ({len(row.tests)})" if row.tests else ""
            handler = f"`{row.handler}`" if row.handler else ""
            lines.append(f"| {row.action} | {row.direction} | {inbound_cell} | {outbound_cell} | {handler} | {proof} |")
        lines.append("")
    return "\n".join(lines)
