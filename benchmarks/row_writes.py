"""PostgreSQL's own CPU and WAL for the rows a busy second of messages writes, in two databases
migrated at two commits (issue 15, round 8: the indexes a message maintains).

Each round is one transaction, as a group commit's batch: 200 chargers' ``last_seen`` written
one statement each (a StatusNotification's or a start's lock of its charger), 100 sessions'
registers updated, 300 meter samples and 400 OCPP log rows copied (about 300 messages' worth).
The same statements go to both databases, the rounds alternating between them; what is measured
is the CPU of each database's backend (Linux /proc: CPU time, not wall time, so the machine's other
load moves it little) and the WAL of the records that touch its relations (pg_walinspect).

    DATABASE_URL=... .venv/bin/python benchmarks/row_writes.py --before dyn_db_mb --after dyn_db_ma [--rounds 30]

The databases (on DATABASE_URL's server) must be migrated already, e.g. ``manage.py migrate``
from a checkout of each commit; the script adds 2,000 chargers named ``ROWS-<n>`` and a session
each to both, once.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg

CHARGERS = 2000
TICK = os.sysconf("SC_CLK_TCK")
_SAMPLE_COLUMNS = ("charge_point_id, transaction_id, source, timestamp, measurand, phase, unit, multiplier, context,"
                   " location, format, raw_value, received_at")  # fmt: skip
_LOG_COLUMNS = "charge_point_id, direction, message_type, unique_id, action, frame, created_at"
_WAL_BY_RELATION = (
    r"WITH r AS (SELECT record_length, substring(block_ref from ' rel \d+/'"
    r" || (SELECT oid FROM pg_database WHERE datname = current_database()) || '/(\d+)')::oid AS node"
    " FROM pg_get_wal_records_info(%s::pg_lsn, %s::pg_lsn))"
    " SELECT coalesce(c.relname, r.node::text), sum(record_length), count(*)"
    " FROM r LEFT JOIN pg_class c ON c.relfilenode = r.node WHERE r.node IS NOT NULL GROUP BY 1"
)


def backend_cpu(pid: int) -> float:
    """User + system CPU seconds of a backend so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Database:
    """One benchmark database: its connection, backend pid, chargers' and sessions' ids."""

    def __init__(self, url: str) -> None:
        self.connection = psycopg.connect(url, autocommit=True)
        self.connection.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        self._fleet_added()
        self.connection.execute("VACUUM ANALYZE")
        self.pid = self._one("SELECT pg_backend_pid()")
        self.chargers = self._one("SELECT array_agg(id ORDER BY id) FROM chargepoints_chargepoint"
                                  " WHERE charge_point_id LIKE 'ROWS-%'")  # fmt: skip
        self.sessions = self._one("SELECT array_agg(t.id ORDER BY t.id) FROM chargepoints_transaction t"
                                  " JOIN chargepoints_chargepoint c ON c.id = t.charge_point_id"
                                  " WHERE c.charge_point_id LIKE 'ROWS-%' AND t.status = 'active'")  # fmt: skip
        self.rng = random.Random(1)  # the same rows in both databases
        self.cpu_s = 0.0
        self.spans: list[tuple[str, str]] = []

    def _one(self, sql: str) -> object:
        row = self.connection.execute(sql).fetchone()
        assert row is not None
        return row[0]

    def _fleet_added(self) -> None:
        if self._one("SELECT count(*) FROM chargepoints_chargepoint WHERE charge_point_id LIKE 'ROWS-%'"):
            return
        self.connection.execute(
            "INSERT INTO chargepoints_chargepoint (charge_point_id, ocpp_version, lifecycle_state,"
            " heartbeat_interval, vendor, model, serial_number, firmware_version, iccid, imsi, connected,"
            " last_seen, password_hash, connection_channel, created_at, updated_at)"
            " SELECT 'ROWS-' || g, '1.6', 'commissioned', 300, 'Vendor', 'Model', 'SN-' || g, '1.0', '', '',"
            " true, now(), '', 'specific.gateway!' || g, now(), now() FROM generate_series(1, %s) g",
            [CHARGERS],
        )
        self.connection.execute(
            "INSERT INTO chargepoints_transaction (charge_point_id, ocpp_version, ocpp_transaction_id, start_key,"
            " id_tag, id_token_type, id_tag_status, stop_id_tag, status, started_at, stop_reason, closed_by_csms,"
            " idle_seconds, seq_nos, anomalies, needs_review, created_at, updated_at)"
            " SELECT id, '1.6', '', 'rows-' || id, 'TAG', '', 'Accepted', '', 'active', now(), '', false, 0,"
            " '[]', '[]', false, now(), now() FROM chargepoints_chargepoint WHERE charge_point_id LIKE 'ROWS-%'"
        )

    def lsn(self) -> str:
        return str(self._one("SELECT pg_current_wal_lsn()::text"))

    def round(self) -> None:
        """One batch's writes in one transaction; its backend CPU and WAL span recorded."""
        cpu_at, lsn_at, now = backend_cpu(self.pid), self.lsn(), datetime.now(UTC)
        with self.connection.transaction(), self.connection.cursor() as cursor:
            for n in self.rng.sample(range(1, CHARGERS + 1), 200):
                cursor.execute(
                    "UPDATE chargepoints_chargepoint SET last_seen = %s WHERE charge_point_id = %s"
                    " RETURNING id, last_boot_at",
                    (now, f"ROWS-{n}"),
                    prepare=True,
                )
            for session in self.rng.sample(self.sessions, 100):
                cursor.execute(
                    "UPDATE chargepoints_transaction SET last_register_wh = %s, last_register_at = %s,"
                    " updated_at = %s WHERE id = %s",
                    (self.rng.randint(0, 10**6), now, now, session),
                    prepare=True,
                )
            with cursor.copy(f"COPY chargepoints_metersample ({_SAMPLE_COLUMNS}) FROM STDIN") as copy:
                for session in self.rng.sample(self.sessions, 100):
                    for measurand in ("Energy.Active.Import.Register", "Power.Active.Import", "Current.Import"):
                        copy.write_row((self.chargers[0], session, "MeterValues", now, measurand, "", "Wh", 0,
                                        "Sample.Periodic", "Outlet", "Raw", "12345.6", now))  # fmt: skip
            with cursor.copy(f"COPY chargepoints_ocppmessage ({_LOG_COLUMNS}) FROM STDIN") as copy:
                for i in range(400):
                    unique_id = str(uuid.uuid4())
                    reading = {"timestamp": now.isoformat(), "sampledValue": [{"value": "12345.6"}]}
                    payload = {"connectorId": 1, "transactionId": i, "meterValue": [reading]}
                    frame = json.dumps([2, unique_id, "MeterValues", payload], separators=(",", ":"))
                    copy.write_row((self.rng.choice(self.chargers), "in" if i % 2 else "out", 2 + i % 2, unique_id,
                                    "MeterValues", frame, now))  # fmt: skip
        self.cpu_s += backend_cpu(self.pid) - cpu_at
        self.spans.append((lsn_at, self.lsn()))

    def result(self, rounds: int) -> dict[str, object]:
        """Per round: backend CPU ms, WAL bytes and records, the WAL bytes of each relation."""
        by_relation: dict[str, int] = {}
        records = 0
        for start, end in self.spans:
            for name, size, count in self.connection.execute(_WAL_BY_RELATION, (start, end)):
                by_relation[name] = by_relation.get(name, 0) + int(size)
                records += int(count)
        return {
            "backend_cpu_ms_per_round": round(self.cpu_s * 1000 / rounds, 1),
            "wal_bytes_per_round": round(sum(by_relation.values()) / rounds),
            "wal_records_per_round": round(records / rounds),
            "wal_bytes_per_round_by_relation": {
                name: round(size / rounds) for name, size in sorted(by_relation.items(), key=lambda kv: -kv[1])
            },
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="database migrated at the earlier commit")
    parser.add_argument("--after", required=True, help="database migrated at the later commit")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--json", default="", help="also write the result here")
    args = parser.parse_args()
    server = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/x").rsplit("/", 1)[0]
    databases = {"before": Database(f"{server}/{args.before}"), "after": Database(f"{server}/{args.after}")}
    for n in range(args.rounds):
        for label in ("before", "after") if n % 2 == 0 else ("after", "before"):
            databases[label].round()
    result = {label: database.result(args.rounds) for label, database in databases.items()}
    text = json.dumps({"rounds": args.rounds, **result}, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
