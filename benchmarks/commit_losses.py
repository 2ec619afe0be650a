"""How a connection lost with its COMMIT in flight shows to psycopg, and whether PostgreSQL committed.

A transaction of the group commit's shape (BEGIN, writes, COMMIT, one psycopg pipeline on an
autocommit connection, as ``kernel.plain_sql._pipelined`` sends a batch's last writes) is sent
again and again while another connection terminates its backend (``pg_terminate_backend``) at
random moments. Each failed pipeline is tallied by the error psycopg raised, whether the
connection then looked closed or broken, and whether its rows were committed. A row "committed"
with the connection "open" is what ``kernel.plain_sql.connection_lost`` must call lost (issue 15,
round 37): written again, it would be stored twice.

    .venv/bin/python benchmarks/commit_losses.py --seconds 20

Bounded by ``--seconds``; PostgreSQL on loopback (``--database-url``); its table is dropped at the end.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from collections import Counter
from typing import Any

import psycopg

TABLE = "commit_losses_bench"
VICTIM = "commit-losses-victim"


def terminating(url: str, stop: threading.Event) -> None:
    """Terminate the victim's backend every 0.5-10 ms until ``stop``."""
    with psycopg.connect(url, autocommit=True) as killer:
        while not stop.is_set():
            time.sleep(random.uniform(0.0005, 0.01))
            killer.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", [VICTIM]
            )


def transaction_sent(victim: psycopg.Connection[Any], marker: int) -> None:
    with victim.pipeline():
        victim.cursor().execute("BEGIN")
        for _ in range(5):
            victim.cursor().execute(f"INSERT INTO {TABLE} VALUES (%s)", [marker])
        victim.cursor().execute("COMMIT")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    tally: Counter[tuple[str, str, str]] = Counter()
    sent = 0
    with psycopg.connect(args.database_url, autocommit=True) as checker:
        checker.execute(f"DROP TABLE IF EXISTS {TABLE}")
        checker.execute(f"CREATE TABLE {TABLE} (marker int)")
        stop = threading.Event()
        killer = threading.Thread(target=terminating, args=(args.database_url, stop), daemon=True)
        killer.start()
        victim: psycopg.Connection[Any] | None = None
        deadline = time.monotonic() + args.seconds
        try:
            while time.monotonic() < deadline:
                if victim is None:
                    try:
                        victim = psycopg.connect(args.database_url, application_name=VICTIM, autocommit=True)
                    except psycopg.OperationalError:
                        continue
                sent += 1
                try:
                    transaction_sent(victim, sent)
                except psycopg.Error as error:
                    looked = "closed or broken" if victim.closed or victim.broken else "open"
                    rows = checker.execute(f"SELECT count(*) FROM {TABLE} WHERE marker = %s", [sent]).fetchone()
                    committed = "committed" if rows and rows[0] else "not committed"
                    kind = f"{type(error).__name__}: {str(error).splitlines()[0][:60]}"
                    tally[(kind, looked, committed)] += 1
                    victim.close()
                    victim = None
        finally:
            stop.set()
            killer.join()
            if victim is not None:
                victim.close()
            checker.execute(f"DROP TABLE {TABLE}")
    failed = sum(tally.values())
    print(f"{sent} transactions sent in {args.seconds:g} s, {failed} failed")
    print("| error | connection looked | rows | times |")
    print("|---|---|---|---|")
    for (kind, looked, committed), times in tally.most_common():
        print(f"| {kind} | {looked} | {committed} | {times} |")


if __name__ == "__main__":
    main()
