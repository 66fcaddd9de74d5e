"""Pieces of the rollout pages: state chips, per-stage progress bars, the device table."""

import json
from typing import Any

from nicegui import ui

from edgefleet.dashboard.layout import cards_when_narrow, stamp
from edgefleet.server.schemas import RolloutDetail, RolloutPublic, RolloutStagePublic

STATE_COLORS = {
    "running": "primary",
    "paused": "warning",
    "halted": "negative",
    "aborted": "grey",
    "completed": "positive",
}
DEVICE_COLORS = {
    "healthy": "positive",
    "skipped": "grey",
    "failed": "negative",
    "UPDATED": "secondary",
    "rollback_sent": "warning",
    "rolled_back": "warning",
    "cancelled": "grey",
}


def state_chip(state: str) -> None:
    badge = ui.badge(state, color=STATE_COLORS.get(state, "grey"))
    badge.props.update({"data-testid": "rollout-state", "data-state": state})


def target_text(target: dict[str, Any]) -> str:
    if "device_kind" in target:
        return f"all {target['device_kind']} devices"
    if "tag" in target:
        return f"devices tagged {target['tag']}"
    ids = list(target.get("device_ids", []))
    return f"{len(ids)} listed device{'s' if len(ids) != 1 else ''}"


def stage_bars(stages: list[RolloutStagePublic]) -> None:
    """One bar per stage: the share of its devices done (healthy or already on the version)."""
    with ui.row().classes("w-full gap-3 items-start"):
        for stage in stages:
            value = stage.done / stage.devices if stage.devices else 1.0
            color = "negative" if stage.failed else "positive" if stage.state == "passed" else "primary"
            column = ui.column().classes("flex-1 gap-1 min-w-32")
            column.props.update({"data-testid": "stage-progress", "data-stage": str(stage.index)})
            column.props["data-stage-state"] = stage.state
            with column:
                ui.label(f"stage {stage.index + 1} · {stage.percent}%").classes("text-xs font-semibold")
                bar = ui.linear_progress(value=round(value, 3), show_value=False, color=color)
                bar.props("rounded size=10px").props.update(
                    {"aria-label": f"stage {stage.index + 1} progress: {stage.done} of {stage.devices} done"}
                )
                detail = f"{stage.done}/{stage.devices} done"
                if stage.in_progress:
                    detail += f" · {stage.in_progress} updating"
                if stage.failed:
                    detail += f" · {stage.failed} failed"
                ui.label(detail).classes("text-xs ef-muted")


def summary_line(rollout: RolloutPublic) -> str:
    parts = [
        target_text(rollout.target),
        f"{rollout.devices} devices",
        f"gate {rollout.gate_s:.0f} s",
        f"{rollout.failures} failed ({rollout.max_failures or 'none'} allowed)",
        "auto-rollback" if rollout.auto_rollback else "no auto-rollback",
        f"created {stamp(rollout.created_at)}",
    ]
    return " · ".join(parts)


def device_table(detail: RolloutDetail) -> None:
    columns: list[dict[str, Any]] = [
        {"name": "device_id", "label": "Device", "field": "device_id", "align": "left", "sortable": True},
        {"name": "stage", "label": "Stage", "field": "stage", "sortable": True},
        {"name": "state", "label": "State", "field": "state", "align": "left", "sortable": True},
        {"name": "reason", "label": "Reason", "field": "reason", "align": "left"},
        {"name": "sent_at", "label": "Sent", "field": "sent_at"},
        {"name": "updated_at", "label": "Last report", "field": "updated_at"},
    ]
    rows = [
        {
            "device_id": d.device_id,
            "stage": d.stage + 1,
            "state": d.state,
            "reason": d.reason or "",
            "sent_at": stamp(d.sent_at),
            "updated_at": stamp(d.updated_at),
        }
        for d in detail.device_states
    ]
    table = ui.table(columns=columns, rows=rows, row_key="device_id", pagination=25).classes("w-full")
    cards_when_narrow(table.props('dense flat data-testid="rollout-devices"'))
    colors = json.dumps(DEVICE_COLORS).replace('"', "'")
    table.add_slot(
        "body-cell-state",
        f"""
        <q-td :props="props" :data-label="props.col.label">
          <q-badge :color="{colors}[props.value] || 'primary'" :label="props.value"
                   :data-device="props.row.device_id" data-testid="device-state" />
        </q-td>
        """,
    )
    table.add_slot(
        "body-cell-device_id",
        """
        <q-td :props="props" :data-label="props.col.label">
          <a :href="'/devices/' + encodeURIComponent(props.value)" class="ef-mono">{{ props.value }}</a>
        </q-td>
        """,
    )
