"""Ingest of sampled raw windows (`sample` channel): stored as sent, the latest N kept per device."""

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from edgefleet.contracts import WindowSample
from edgefleet.server.db.models import WindowSampleRow


def sample_row(org_id: int, device_kind: str, message: WindowSample, received_at: datetime) -> dict[str, Any]:
    return {
        "org_id": org_id,
        "device_id": message.device_id,
        "seq": message.seq,
        "ts": message.ts,
        "received_at": received_at,
        "device_kind": device_kind,
        "model_id": message.model_id,
        "model_version": message.model_version,
        "window_index": message.window,
        "sample_rate_hz": message.sample_rate_hz,
        "axes": list(message.axes),
        "length": message.length,
        "encoding": message.encoding,
        "scale": list(message.scale),
        "data": message.data,
        "score": message.score,
        "threshold": message.threshold,
    }


def keep_latest(session: Session, device_ids: Iterable[str], keep: int) -> int:
    """Delete all but the `keep` newest samples (by device time) of each device; returns how many."""
    deleted = 0
    for device_id in sorted(set(device_ids)):
        newest = (
            select(WindowSampleRow.id)
            .where(WindowSampleRow.device_id == device_id)
            .order_by(WindowSampleRow.ts.desc(), WindowSampleRow.id.desc())
            .limit(keep)
        )
        result = session.execute(
            delete(WindowSampleRow)
            .where(WindowSampleRow.device_id == device_id, WindowSampleRow.id.not_in(newest))
            .execution_options(synchronize_session=False)
        )
        deleted += int(getattr(result, "rowcount", 0) or 0)
    return deleted
