"""What a session's updates cost PostgreSQL (issue 15), changed without blocking the gateway's
writes (``kernel.online_ddl``):

- sessions at fillfactor 50: a reading's update of its session (register, energy, seqNos: no
  index covers them) finds room on the row's page and writes no index entry (HOT); at 100 most
  of them moved the row and wrote an entry in each of its seven indexes;
- the ``needs_review`` index becomes partial (``session_needs_review``, the sessions to review:
  the admin's filter), the reservation's foreign key index too (``session_reserved``, the few
  sessions that used one): a start, a stop and an update that moves its row write no entry in
  them.
"""

import django.db.models.deletion
from django.db import migrations, models

from kernel import online_ddl

_SESSIONS = "chargepoints_transaction"


class Migration(migrations.Migration):
    atomic = False  # CREATE/DROP INDEX CONCURRENTLY run outside a transaction

    dependencies = [
        ("charging", "0004_session_seq_nos_compact"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="transaction",
                    name="needs_review",
                    field=models.BooleanField(default=False),
                ),
                migrations.AlterField(
                    model_name="transaction",
                    name="reservation",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="transactions",
                        to="charging.reservation",
                    ),
                ),
                migrations.AddIndex(
                    model_name="transaction",
                    index=models.Index(
                        condition=models.Q(("needs_review", True)), fields=["needs_review"], name="session_needs_review"
                    ),
                ),
                migrations.AddIndex(
                    model_name="transaction",
                    index=models.Index(
                        condition=models.Q(("reservation__isnull", False)),
                        fields=["reservation"],
                        name="session_reserved",
                    ),
                ),
            ],
            database_operations=[
                online_ddl.index_created("session_needs_review", _SESSIONS, '("needs_review") WHERE "needs_review"'),
                online_ddl.index_dropped("chargepoints_transaction_needs_review_92c4c707", _SESSIONS, '("needs_review")'),
                online_ddl.index_created(
                    "session_reserved", _SESSIONS, '("reservation_id") WHERE "reservation_id" IS NOT NULL'
                ),
                online_ddl.index_dropped(
                    "chargepoints_transaction_reservation_id_ce9bebed", _SESSIONS, '("reservation_id")'
                ),
            ],
        ),
        online_ddl.fillfactor_set(_SESSIONS, 50),
    ]
