"""EXPLAIN of the main queries on a realistic volume (`edgefleet bench scale --explain-events N`):
N events over `devices` devices and 90 days, made by one INSERT ... SELECT generate_series in
PostgreSQL (minutes for 10 million on 2 cores, not hours of ingest), into the partitioned schema."""

import re
import time
from typing import Any

import psycopg

GENERATE = """
INSERT INTO events (org_id, device_id, seq, ts, received_at, received_day, kind, active, severity,
                    score, threshold, data, clock_synced)
SELECT %(org)s, 'dev-' || (g %% %(devices)s), g / %(devices)s,
       now() - make_interval(secs => (%(n)s - g)::float8 * %(span)s / %(n)s),
       now() - make_interval(secs => (%(n)s - g)::float8 * %(span)s / %(n)s),
       ((now() - make_interval(secs => (%(n)s - g)::float8 * %(span)s / %(n)s)) AT TIME ZONE 'UTC')::date,
       CASE WHEN g %% 10 = 0 THEN 'rule' ELSE 'anomaly' END, true, 'warning', 0.9, 0.5, '{}', true
FROM generate_series(1, %(n)s) AS g
"""
QUERIES = {
    # the dashboard's event log: newest first, one page (services/queries.list_events)
    "events_page": "SELECT * FROM events WHERE org_id = %(org)s ORDER BY id DESC LIMIT 50",
    # one device's events over a day (device detail)
    "device_day": "SELECT * FROM events WHERE device_id = 'dev-7' AND ts >= now() - interval '1 day' "
    "ORDER BY id DESC LIMIT 50",
    # statistics: events per kind over a week (stats/events)
    "kinds_week": "SELECT kind, count(*) FROM events WHERE org_id = %(org)s AND ts >= now() - interval "
    "'7 days' GROUP BY kind",
    # the ingest's dedup check of earlier days (ingest/pg_bulk.py), for one row
    "ingest_dedup": "SELECT 1 FROM events WHERE device_id = 'dev-7' AND seq = 5 AND received_day >= "
    "(now() - interval '2 days')::date AND received_day < now()::date",
}


def _partitions(plan: str) -> int:
    return len(set(re.findall(r"on (events_p\d+|events_default)", plan)))


def explain(dsn: str, org_id: int, n: int, devices: int, days: int = 90) -> dict[str, Any]:
    out: dict[str, Any] = {"events": n, "devices": devices, "days": days}
    with psycopg.connect(dsn, autocommit=True) as connection:
        months = connection.execute(
            "SELECT DISTINCT date_trunc('month', d)::date FROM generate_series(now() - %s * interval "
            "'1 day', now(), interval '1 day') AS d",
            (days,),
        ).fetchall()
        for (month,) in months:  # the months of the span (the worker only creates them ahead)
            name = f"events_p{month:%Y%m}"
            if connection.execute("SELECT to_regclass(%s)", (name,)).fetchone() == (None,):
                connection.execute(
                    f"CREATE TABLE {name} PARTITION OF events FOR VALUES FROM ('{month}') TO "
                    f"('{month}'::date + interval '1 month')"
                )
        started = time.perf_counter()
        connection.execute(GENERATE, {"org": org_id, "devices": devices, "n": n, "span": days * 86400})
        out["generate_s"] = round(time.perf_counter() - started, 1)
        connection.execute("ANALYZE events")
        sizes = connection.execute(
            "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits "
            "WHERE inhparent = 'events'::regclass"
        ).fetchone()
        out["size_mb"] = round(float(sizes[0] if sizes else 0) / 2**20, 1)
        for name, sql in QUERIES.items():
            rows = connection.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, {"org": org_id}).fetchall()
            plan = "\n".join(r[0] for r in rows)
            took = re.search(r"Execution Time: ([\d.]+) ms", plan)
            out[name] = {
                "ms": float(took[1]) if took else None,
                "partitions_read": _partitions(plan),
                "index": "Index" in plan,
                "plan_head": plan.splitlines()[0][:160],
            }
    return out
