"""The activity ledger's upgrade: ``schema apply`` on a keyspace an older version created.

The old table had one clustering row per input partition and a ``certificate-pending`` marker
row; the new one keeps them readable and adds the static columns
(docs/flows/activity-aggregate-updater.md#72-the-ledger-row, docs/operations.md).
"""

from __future__ import annotations

import uuid

from lernflow.config import Settings
from lernflow.flows.activity_aggregate_updater import rules
from lernflow.flows.activity_aggregate_updater.store import ActivityServerStore
from lernflow.kernel.clients import cassandra_session
from lernflow.ops import schema

OLD_TABLE = (
    "CREATE TABLE {ks}.lernflow_activity_applied (userid text, courseid text, batchid text, "
    "source text, applied_offset bigint, PRIMARY KEY ((userid, courseid, batchid), source))"
)
U, V = ("u1", "c1", "b1"), ("u2", "c1", "b1")


def test_schema_apply_upgrades_an_old_ledger_idempotently_and_old_rows_still_count(
    stack: Settings,
) -> None:
    prefix = f"l{uuid.uuid4().hex[:8]}_"
    ks = prefix + stack.cassandra.courses_keyspace
    cluster, session = cassandra_session(stack.cassandra)
    try:
        session.execute(
            f"CREATE KEYSPACE {ks} WITH replication = "
            "{'class': 'SimpleStrategy', 'replication_factor': 1}",
            timeout=120,
        )
        session.execute(OLD_TABLE.format(ks=ks), timeout=120)
        insert = (
            f"INSERT INTO {ks}.lernflow_activity_applied (userid, courseid, batchid, source, "
            "applied_offset) VALUES (%s, %s, %s, %s, %s)"
        )
        session.execute(insert, (*U, "in:0", 5))
        session.execute(insert, (*U, "in:1", 9))
        session.execute(insert, (*U, "certificate-pending", 1_767_225_600_000))
        first: list[str] = []
        schema.apply_cassandra(stack.cassandra, first.append, keyspace_prefix=prefix)
        second: list[str] = []
        schema.apply_cassandra(stack.cassandra, second.append, keyspace_prefix=prefix)
        added = [m.rsplit(".", 1)[-1] for m in first if "lernflow_activity_applied" in m]
        assert added == [
            "offsets map<text, bigint> static",
            "completion_record text static",
            "completion_ms bigint static",
        ]
        assert second == []
        options = session.execute(
            "SELECT compaction, gc_grace_seconds, default_time_to_live FROM system_schema.tables "
            "WHERE keyspace_name=%s AND table_name='lernflow_activity_applied'",
            (ks,),
        ).one()
        assert options.compaction["class"].endswith("LeveledCompactionStrategy")
        assert (options.gc_grace_seconds, options.default_time_to_live) == (86400, 0)

        settings = stack.with_overrides(
            cassandra=stack.cassandra.model_copy(update={"courses_keyspace": ks})
        )
        store = ActivityServerStore(settings)
        try:
            mark = rules.CompletionMark(rules.AppliedOffset("in:0", 7), 1_767_225_700_000)
            store.write_enrolments(
                [rules.EnrolmentWrite(U, applied=(rules.AppliedOffset("in:0", 7),))],
            )
            store.write_enrolments(
                [rules.EnrolmentWrite(V, applied=(mark.record,), completed_by=mark.record,
                                      enrolment=_completion(mark.completed_on_ms))]
            )  # fmt: skip
            ledgers = store.ledgers([U, V])
        finally:
            store.close()
        # old rows still count (the higher offset per source wins); the old marker is pending
        assert ledgers[U] == rules.Ledger({"in:0": 7, "in:1": 9}, 1_767_225_600_000, None)
        assert ledgers[V] == rules.Ledger({"in:0": 7}, None, mark)
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {ks}", timeout=120)
        for name in ("sunbird_keyspace", "hierarchy_keyspace"):
            session.execute(
                f"DROP KEYSPACE IF EXISTS {prefix}{getattr(stack.cassandra, name)}", timeout=120
            )
        cluster.shutdown()


def _completion(completed_on_ms: int) -> rules.EnrolmentUpdate:
    return rules.EnrolmentUpdate(
        status=2, progress=1, content_status={"x": 2}, datetime_ms=completed_on_ms,
        completed_on_ms=completed_on_ms,
    )  # fmt: skip
