"""Drift monitoring: per device and model version, the device's drift statistic and its score
percentiles against the model card's `score_stats`.

The ingest store hands every newly stored telemetry row to `DriftWatch.observe` (same transaction).
An interval is *out of limit* when the device's drift statistic is above `DriftLimits.drift` or its
score p95 is above `DriftLimits.score_ratio` x the card's p95. `consecutive` out-of-limit intervals
in a row on one model version open a server-side alarm of kind "drift" through the alarm tracker
(same ack/clear/notification cooldown as the others); every further out-of-limit interval keeps it
open, every in-limit interval marks it normal, and `alarms.auto_clear` clears it after the alarms'
clear time. A model version change resets the count. Device-sent `drift` events are stored as events
only (they do not raise alarms), so there is never a second drift alarm for a device.
"""

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

from pydantic import ValidationError
from sqlalchemy import and_, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from edgefleet.contracts import ScoreStats
from edgefleet.server.db.models import DriftState, ModelRow
from edgefleet.server.services.alarms import AlarmChange, AlarmTracker, IncomingEvent
from edgefleet.server.settings import ServerSettings

log = logging.getLogger(__name__)
ALARM_KIND = "drift"
DRIFT_ALARM_KINDS = frozenset({ALARM_KIND})
CardKey = tuple[int, str, str]
"""(org id, model id, model version)"""
Notification = tuple[int, str, dict[str, Any]]


@dataclass(frozen=True)
class DriftLimits:
    drift: float = 1.5
    score_ratio: float = 3.0
    consecutive: int = 3

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> Self:
        return cls(settings.drift_limit, settings.drift_score_ratio_limit, settings.drift_consecutive)


@dataclass(frozen=True)
class CardReference:
    """The model card's score distribution on held-out normal data."""

    mean: float
    std: float
    p50: float
    p95: float


def card_reference(card: object) -> CardReference | None:
    """The card's `score_stats`, or None when the card or its stats are missing or malformed."""
    stats = card.get("score_stats") if isinstance(card, Mapping) else None
    if stats is None:
        return None
    try:
        s = ScoreStats.model_validate(stats)
    except ValidationError:
        return None
    return CardReference(s.mean, s.std, s.p50, s.p95)


def load_references(session: Session, keys: Iterable[CardKey]) -> dict[CardKey, CardReference | None]:
    """Card references for (org, model id, version) keys, one query; absent models map to None."""
    wanted = set(keys)
    out: dict[CardKey, CardReference | None] = dict.fromkeys(wanted)
    if not wanted:
        return out
    match = or_(
        *(and_(ModelRow.org_id == o, ModelRow.model_id == m, ModelRow.version == v) for o, m, v in wanted)
    )
    for org_id, model_id, version, card in session.execute(
        select(ModelRow.org_id, ModelRow.model_id, ModelRow.version, ModelRow.card).where(match)
    ):
        out[(org_id, model_id, version)] = card_reference(card)
    return out


class CardCache:
    """Card references by key: found ones are kept (a registry version never changes), missing ones
    are asked again after `miss_ttl_s` (the model may be uploaded after its devices report)."""

    def __init__(self, miss_ttl_s: float = 60.0, max_entries: int = 4096) -> None:
        self._miss_ttl = miss_ttl_s
        self._max = max_entries
        self._found: dict[CardKey, CardReference | None] = {}
        self._asked: dict[CardKey, float] = {}

    def get_many(self, session: Session, keys: Iterable[CardKey]) -> dict[CardKey, CardReference | None]:
        now = time.monotonic()
        wanted = set(keys)
        stale = {
            k
            for k in wanted
            if k not in self._found or (self._found[k] is None and now - self._asked[k] >= self._miss_ttl)
        }
        if stale:
            if len(self._found) + len(stale) > self._max:
                self._found.clear()
                self._asked.clear()
            for key, ref in load_references(session, stale).items():
                self._found[key] = ref
                self._asked[key] = now
        return {k: self._found.get(k) for k in wanted}


@dataclass(frozen=True)
class Verdict:
    judged: bool
    """False when the interval carries neither a drift statistic nor a score p95 to judge."""
    out_of_limit: bool
    reason: str | None
    p95_ratio: float | None


def judge(
    drift: float | None, score_p95: float | None, ref: CardReference | None, limits: DriftLimits
) -> Verdict:
    ratio = score_p95 / ref.p95 if score_p95 is not None and ref is not None and ref.p95 > 0 else None
    reasons = []
    if drift is not None and drift > limits.drift:
        reasons.append("drift")
    if ratio is not None and ratio > limits.score_ratio:
        reasons.append("score_p95")
    judged = drift is not None or ratio is not None
    return Verdict(judged, bool(reasons), "+".join(reasons) or None, ratio)


def _insert(session: Session) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


class DriftWatch:
    """Judges stored telemetry and raises/clears drift alarms (state in `drift_state`, so restarts
    and several ingest workers continue the same count)."""

    def __init__(
        self, limits: DriftLimits | None = None, cooldown_s: float = 600.0, cards: CardCache | None = None
    ) -> None:
        self.limits = limits or DriftLimits()
        self._cooldown = cooldown_s
        self._cards = cards or CardCache()

    def observe(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> list[Notification]:
        """Judge newly stored telemetry rows (the store's row dicts); returns hub notifications."""
        rows = sorted(
            (r for r in rows if isinstance(r["data"], Mapping) and r["data"].get("model_version")),
            key=lambda r: (r["device_id"], r["seq"]),
        )
        if not rows:
            return []
        states = self._states(session, rows)
        tracker = AlarmTracker(session, self._cooldown)
        open_alarms = set(tracker.preload(ALARM_KIND, states))
        refs = self._cards.get_many(
            session,
            {
                (r["org_id"], r["data"]["model_id"], r["data"]["model_version"])
                for r in rows
                if r["data"].get("model_id")
            },
        )
        opened: dict[int, tuple[AlarmChange, str | None]] = {}
        for row in rows:
            state = states[row["device_id"]]
            if row["seq"] <= state.seq:
                continue  # late (an older interval after a newer one): not part of the run
            model_id, version = row["data"].get("model_id"), row["data"]["model_version"]
            if (state.model_id, state.model_version) != (model_id, version):
                state.model_id, state.model_version = model_id, version
                state.consecutive, state.reason, state.out_since = 0, None, None
            ref = refs.get((row["org_id"], model_id, version)) if model_id else None
            verdict = judge(row["drift"], row["score_p95"], ref, self.limits)
            state.seq, state.ts = row["seq"], row["ts"]
            state.drift, state.score_p50, state.score_p95 = row["drift"], row["score_p50"], row["score_p95"]
            state.p95_ratio, state.out_of_limit = verdict.p95_ratio, verdict.out_of_limit
            if not verdict.judged:
                continue
            device_id = row["device_id"]
            if verdict.out_of_limit:
                state.consecutive += 1
                state.out_since = state.out_since or row["ts"]
                state.reason = verdict.reason
                if state.consecutive < self.limits.consecutive and device_id not in open_alarms:
                    continue
                incoming = IncomingEvent(
                    row["org_id"], device_id, ALARM_KIND, True, "warning", row["ts"], row.get("received_at")
                )
                _, change = tracker.apply(incoming, kinds=DRIFT_ALARM_KINDS)
                open_alarms.add(device_id)
                if change is not None and change.change == "opened":
                    log.info("drift alarm on %s (%s %s): %s", device_id, model_id, version, verdict.reason)
                    opened[change.alarm.id] = (change, verdict.reason)
            else:
                state.consecutive, state.out_since = 0, None
                if device_id in open_alarms:
                    incoming = IncomingEvent(
                        row["org_id"],
                        device_id,
                        ALARM_KIND,
                        False,
                        "warning",
                        row["ts"],
                        row.get("received_at"),
                    )
                    tracker.apply(incoming, kinds=DRIFT_ALARM_KINDS)
        return [(c.alarm.org_id, "alarm", _alarm_json(c, reason)) for c, reason in opened.values()]

    def _states(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> dict[str, DriftState]:
        """The devices' state rows, created (race-free: insert or ignore) for first-time devices."""
        first = {r["device_id"]: r for r in reversed(rows)}
        states = {
            s.device_id: s for s in session.scalars(select(DriftState).where(DriftState.device_id.in_(first)))
        }
        missing = [first[d] for d in first if d not in states]
        if missing:
            statement = _insert(session)(DriftState).on_conflict_do_nothing(index_elements=["device_id"])
            session.execute(
                statement,
                [
                    {
                        "device_id": r["device_id"],
                        "org_id": r["org_id"],
                        "model_id": r["data"].get("model_id"),
                        "model_version": r["data"]["model_version"],
                        "seq": -1,
                        "ts": r["ts"],
                        "out_of_limit": False,
                        "consecutive": 0,
                    }
                    for r in missing
                ],
            )
            query = select(DriftState).where(DriftState.device_id.in_([r["device_id"] for r in missing]))
            states.update((s.device_id, s) for s in session.scalars(query))
        return states


def _alarm_json(change: AlarmChange, reason: str | None) -> dict[str, Any]:
    alarm = change.alarm
    return {
        "change": change.change,
        "notify": change.notify,
        "id": alarm.id,
        "device_id": alarm.device_id,
        "kind": alarm.kind,
        "severity": alarm.severity,
        "event_count": alarm.event_count,
        "opened_at": alarm.opened_at.isoformat(),
        "last_event_at": alarm.last_event_at.isoformat(),
        "reason": reason,
    }
