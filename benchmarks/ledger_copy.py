"""PostgreSQL's CPU for a batch's COPY of ledger rows (``chargepoints_metersample``), by what each
row is checked against and indexed by (issue 15, round 22).

The rows go to copies of the ledger's table in one migrated database (``LIKE ... INCLUDING ALL``,
then the variant's foreign keys and indexes, each key as Django declares one: ``DEFERRABLE
INITIALLY DEFERRED``). Each round is one transaction as the group commit writes it: ``SET
CONSTRAINTS ALL IMMEDIATE``, the gathered UPDATE of the rows' sessions' registers and their chargers'
``last_seen`` (so that the keys' checks lock rows the same batch has updated, as in the fleet; off
with ``--fresh``), then one COPY of two rows a reading (energy register and power, as the fleet's)
into one variant's table; the variants take turns. What is measured is the backend's on-CPU time
around the COPY alone (``/proc/<pid>/schedstat``, nanoseconds), divided by its rows.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/dyn_x .venv/bin/python benchmarks/ledger_copy.py \
        [--rounds 600] [--sessions 30] [--json out.json]

The database must be migrated; the script adds 1,000 chargers named ``LEDGER-<n>`` with an open
session each, once, and (re)creates its ``ledger_v_*`` tables.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg

CHARGERS = 1000
_COLUMNS = (
    "charge_point_id, transaction_id, evse_id, connector_id, source, timestamp, charger_timestamp, measurand, phase,"
    " unit, multiplier, context, location, format, raw_value, signed_data, value, received_at"
)
_SESSION_KEY = "FOREIGN KEY (transaction_id) REFERENCES chargepoints_transaction (id) DEFERRABLE INITIALLY DEFERRED"
_CHARGER_KEY = "FOREIGN KEY (charge_point_id) REFERENCES chargepoints_chargepoint (id) DEFERRABLE INITIALLY DEFERRED"
_PAIR_KEY = (
    "FOREIGN KEY (transaction_id, charge_point_id) REFERENCES chargepoints_transaction (id, charge_point_id)"
    " DEFERRABLE INITIALLY DEFERRED"
)
_PARKED_KEY = (
    "FOREIGN KEY (reconciliation_item_id) REFERENCES chargepoints_reconciliationitem (id) DEFERRABLE INITIALLY DEFERRED"
)
_CHARGER_INDEX = "CREATE INDEX ON {t} (charge_point_id)"
_SESSION_INDEX = "CREATE INDEX ON {t} (transaction_id, measurand, timestamp)"
# name: (constraints, indexes beyond the pkey and the partial parked one LIKE copies)
VARIANTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "both_keys": ((_SESSION_KEY, _CHARGER_KEY), (_CHARGER_INDEX, _SESSION_INDEX)),
    "no_keys": ((), (_CHARGER_INDEX, _SESSION_INDEX)),
    "session_key": ((_SESSION_KEY,), (_CHARGER_INDEX, _SESSION_INDEX)),
    "charger_key": ((_CHARGER_KEY,), (_CHARGER_INDEX, _SESSION_INDEX)),
    "pair_key": ((_PAIR_KEY,), (_CHARGER_INDEX, _SESSION_INDEX)),
    "both_keys_no_charger_index": ((_SESSION_KEY, _CHARGER_KEY), (_SESSION_INDEX,)),
    "no_keys_no_indexes": ((), ()),
    # with the parked stop's key too, as the table has it (NULL in almost every row)
    "both_keys_parked": ((_SESSION_KEY, _CHARGER_KEY, _PARKED_KEY), (_CHARGER_INDEX, _SESSION_INDEX)),
    "pair_key_parked": ((_PAIR_KEY, _PARKED_KEY), (_CHARGER_INDEX, _SESSION_INDEX)),
}


def backend_ns(pid: int) -> int:
    """A backend's on-CPU nanoseconds so far."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def _trimmed(values: list[float]) -> list[float]:
    """The values without their lowest and highest tenth."""
    cut = len(values) // 10
    return sorted(values)[cut : len(values) - cut]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=600)
    parser.add_argument("--sessions", type=int, default=30, help="readings (sessions) a COPY; two rows each")
    parser.add_argument("--fresh", action="store_true", help="no UPDATE of the sessions and chargers first")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--sorted", action="store_true", help="rows in (transaction_id, measurand) order")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    variants = args.variants.split(",")
    db = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
    has_pair = db.execute(
        "SELECT count(*) FROM pg_indexes WHERE tablename = 'chargepoints_transaction' AND indexname = 'ledger_pair'"
    ).fetchone()
    if not has_pair or not has_pair[0]:
        db.execute("CREATE UNIQUE INDEX ledger_pair ON chargepoints_transaction (id, charge_point_id)")
    if not db.execute("SELECT count(*) FROM chargepoints_chargepoint WHERE charge_point_id LIKE 'LEDGER-%'").fetchone()[
        0
    ]:  # type: ignore[index]
        db.execute(
            "INSERT INTO chargepoints_chargepoint (charge_point_id, ocpp_version, lifecycle_state,"
            " heartbeat_interval, vendor, model, serial_number, firmware_version, iccid, imsi, connected,"
            " last_seen, password_hash, connection_channel, created_at, updated_at)"
            " SELECT 'LEDGER-' || g, '1.6', 'commissioned', 300, 'Vendor', 'Model', 'SN-' || g, '1.0', '', '',"
            " true, now(), '', 'specific.gateway!' || g, now(), now() FROM generate_series(1, %s) g",
            [CHARGERS],
        )
        db.execute(
            "INSERT INTO chargepoints_transaction (charge_point_id, ocpp_version, ocpp_transaction_id, start_key,"
            " id_tag, id_token_type, id_tag_status, stop_id_tag, status, started_at, stop_reason, closed_by_csms,"
            " idle_seconds, seq_nos, anomalies, needs_review, created_at, updated_at, connector_id)"
            " SELECT id, '1.6', '', 'ledger-' || id, 'TAG', '', 'Accepted', '', 'active', now(), '', false, 0,"
            " '[]', '[]', false, now(), now(), 1 FROM chargepoints_chargepoint WHERE charge_point_id LIKE 'LEDGER-%'"
        )
    sessions = db.execute(
        "SELECT t.id, t.charge_point_id FROM chargepoints_transaction t JOIN chargepoints_chargepoint c"
        " ON c.id = t.charge_point_id WHERE c.charge_point_id LIKE 'LEDGER-%' AND t.status = 'active' ORDER BY t.id"
    ).fetchall()
    for name in variants:
        constraints, indexes = VARIANTS[name]
        table = f"ledger_v_{name}"
        db.execute(f"DROP TABLE IF EXISTS {table}")
        db.execute(f"CREATE TABLE {table} (LIKE chargepoints_metersample INCLUDING DEFAULTS INCLUDING IDENTITY)")
        db.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (id)")
        db.execute(f"CREATE INDEX ON {table} (reconciliation_item_id) WHERE reconciliation_item_id IS NOT NULL")
        for constraint in constraints:
            db.execute(f"ALTER TABLE {table} ADD {constraint}")
        for index in indexes:
            db.execute(index.format(t=table))
    db.execute("VACUUM ANALYZE")
    pid = db.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
    rng = random.Random(1)
    spent: dict[str, list[float]] = {name: [] for name in variants}
    clock = datetime(2026, 1, 1, tzinfo=UTC)
    register = 0
    for n in range(args.rounds):
        name = variants[n % len(variants)]
        picked = rng.sample(sessions, args.sessions)
        if args.sorted:
            picked.sort()
        clock += timedelta(seconds=1)
        register += 100
        with db.transaction(), db.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            if not args.fresh:
                ids = [pk for pk, _ in picked]
                cursor.execute(
                    "UPDATE chargepoints_transaction t SET last_register_wh = v.wh, last_register_at = v.at,"
                    " updated_at = v.at FROM unnest(%s::bigint[], %s::numeric[], %s::timestamptz[]) AS v(id, wh, at)"
                    " WHERE t.id = v.id",
                    (ids, [register] * len(ids), [clock] * len(ids)),
                )
                cursor.execute(
                    "UPDATE chargepoints_chargepoint SET last_seen = %s WHERE id = ANY(%s::bigint[])",
                    (clock, [cp for _, cp in picked]),
                )
            before = backend_ns(pid)
            with cursor.copy(f"COPY ledger_v_{name} ({_COLUMNS}) FROM STDIN") as copy:
                for pk, cp in picked:
                    for measurand, unit, value in (
                        ("Energy.Active.Import.Register", "Wh", register),
                        ("Power.Active.Import", "W", 36000),
                    ):
                        row = (cp, pk, None, 1, "MeterValues", clock, None, measurand, "", unit, 0,
                               "Sample.Periodic", "Outlet", "Raw", str(value), None, Decimal(value), clock)  # fmt: skip
                        copy.write_row(row)
            spent[name].append((backend_ns(pid) - before) / 1000 / (2 * args.sessions))
    result = {
        "rounds": args.rounds,
        "rows_per_copy": 2 * args.sessions,
        "fresh": args.fresh,
        "sorted": args.sorted,
        "us_per_row": {
            name: {
                "mean": round(statistics.fmean(values), 2),
                "median": round(statistics.median(values), 2),
                "trimmed_mean": round(
                    statistics.fmean(sorted(values)[len(values) // 10 : -len(values) // 10 or None]), 2
                ),
            }
            for name, values in spent.items()
        },
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    for name in variants:
        db.execute(f"DROP TABLE IF EXISTS ledger_v_{name}")
    db.execute("DROP INDEX IF EXISTS ledger_pair")


if __name__ == "__main__":
    main()
