"""The rollout engine at the database level, on a fake clock, fed through the real ingest store:
stages wait for the health gate; failures, timeouts and unhealthy telemetry halt; auto-rollback;
pause, resume, abort; a new engine over the same database carries on."""

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete

from edgefleet.server.db import make_engine, make_sessionmaker, transaction
from edgefleet.server.db.models import Organization, RolloutDevice
from edgefleet.server.errors import ConflictError
from edgefleet.server.services import rollouts
from edgefleet.server.services.rollouts import apply_state, stage_sizes
from tests.server.rollout_kit import BASE_URL, NEW, OLD, Bench, by_action, make_bench


@pytest.fixture
def bench(tmp_path: Path) -> Bench:
    return make_bench(f"sqlite:///{tmp_path / 'rollouts.db'}")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.needs("postgres"))])
def any_bench(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Bench]:
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_database").url
        org = f"pg{uuid.uuid4().hex[:8]}"
    else:
        url, org = f"sqlite:///{tmp_path / 'rollouts.db'}", "Plant"
    bench = make_bench(url, org_name=org)
    yield bench
    with transaction(bench.sessions) as session:
        session.execute(delete(Organization).where(Organization.id == bench.org_id))


def _pass_gate(bench: Bench, rollout_id: int, devices: list[str], start: float, gate_s: float) -> float:
    """Report UPDATED, let the gate start, send healthy telemetry, step past the gate; returns the time."""
    bench.update(devices, rollout_id)
    bench.step(start)
    for device_id in devices:
        bench.telemetry(device_id, 0.03, model_version=NEW)
    bench.step(start + gate_s + 1)
    return start + gate_s + 1


def test_stage_sizes_are_cumulative_ceilings() -> None:
    assert stage_sizes(20, [5, 25, 100]) == [1, 5, 20]
    assert stage_sizes(3, [5, 25, 100]) == [1, 1, 3]
    assert stage_sizes(1, [50, 100]) == [1, 1]
    assert stage_sizes(200, [10, 50, 100]) == [20, 100, 200]


def test_devices_are_ordered_by_a_hash_of_rollout_and_device(bench: Bench) -> None:
    rollout_id = bench.create()
    rows = bench.rows(rollout_id)
    expected = sorted(bench.devices, key=lambda d: hashlib.sha256(f"{rollout_id}:{d}".encode()).hexdigest())
    assert [r.device_id for r in rows] == expected
    assert [sum(r.stage == i for r in rows) for i in range(3)] == [1, 4, 15]
    assert {r.state for r in rows} == {"pending"}


def test_stages_advance_only_after_the_gate(any_bench: Bench) -> None:
    bench = any_bench
    rollout_id = bench.create(gate_s=60.0)
    bench.step(0)
    commands = bench.sink.take()
    first = bench.stage(rollout_id, 0)
    assert [c.device_id for c in commands] == first
    command = commands[0]
    assert command.action == "update" and command.rollout_id == str(rollout_id)
    assert command.manifest is not None and command.manifest.model_version == NEW
    assert command.manifest.url == f"{BASE_URL}/api/v1/ota/packages/{bench.models[NEW]}"
    assert len(command.manifest.self_test) == 2
    assert bench.row(rollout_id, first[0]).command_id == command.command_id
    bench.step(1)
    assert bench.sink.take() == []  # sent once

    bench.update(first, rollout_id)
    bench.step(2)  # the gate starts
    bench.telemetry(first[0], 0.03, model_version=NEW)
    bench.step(40)
    assert bench.sink.take() == [] and bench.rollout(rollout_id).stage == 0
    assert bench.row(rollout_id, first[0]).state == "UPDATED"

    second = bench.stage(rollout_id, 1)
    bench.set_model_version(second[0], NEW)  # already there: skipped, counted done
    bench.step(63)
    assert bench.row(rollout_id, first[0]).state == "healthy"
    assert bench.rollout(rollout_id).stage == 1
    assert by_action(bench.sink.take()) == {"update": set(second[1:])}
    assert bench.row(rollout_id, second[0]).state == "skipped"

    now = _pass_gate(bench, rollout_id, second[1:], 64, 60)
    assert bench.rollout(rollout_id).stage == 2
    third = bench.stage(rollout_id, 2)
    assert by_action(bench.sink.take()) == {"update": set(third)}
    _pass_gate(bench, rollout_id, third, now + 1, 60)
    rollout = bench.rollout(rollout_id)
    assert rollout.state == "completed" and rollout.reason is None and rollout.finished_at is not None
    assert set(bench.states(rollout_id).values()) == {"healthy", "skipped"}
    actions = bench.audit_actions()
    assert actions.count("rollout.stage") == 2 and actions[-1] == "rollout.complete"
    assert "rollout.create" in actions
    changes = [d["change"] for _, t, d in bench.notifications if t == "rollout"]
    assert changes.count("stage") == 2 and changes[-1] == "completed"


def test_failures_beyond_the_limit_halt_and_no_further_device_gets_the_command(bench: Bench) -> None:
    rollout_id = bench.create(stages=[10, 50, 100], max_failures=1, auto_rollback=False, gate_s=10.0)
    bench.step(0)
    a, b = bench.stage(rollout_id, 0)
    bench.sink.take()
    bench.report(a, "DOWNLOADING", rollout_id)
    bench.report(a, "FAILED", rollout_id, "self-test case 0: output differs by 9")
    now = _pass_gate(bench, rollout_id, [b], 1, 10)
    assert bench.rollout(rollout_id).state == "running"  # one failure is within the limit
    second = bench.stage(rollout_id, 1)
    assert by_action(bench.sink.take()) == {"update": set(second)}

    bench.report(second[0], "FAILED", rollout_id, "signature does not verify")
    bench.report(second[1], "DOWNLOADING", rollout_id)
    bench.step(now + 1)
    rollout = bench.rollout(rollout_id)
    assert rollout.state == "halted" and not rollout.rollback
    assert (
        rollout.reason is not None
        and "2 failed (limit 1)" in rollout.reason
        and "self-test" in rollout.reason
    )
    assert by_action(bench.sink.take()) == {"cancel": set(second[1:])}  # in flight: cancelled, no rollback
    for later in (now + 100, now + 10_000):
        bench.step(later)
        assert bench.sink.take() == []
    assert {bench.states(rollout_id)[d] for d in bench.stage(rollout_id, 2)} == {"pending"}
    assert bench.row(rollout_id, a).reason == "FAILED: self-test case 0: output differs by 9"
    assert "rollout.halt" in bench.audit_actions()


def test_auto_rollback_rolls_back_the_devices_this_rollout_updated(bench: Bench) -> None:
    rollout_id = bench.create(stages=[10, 50, 100], max_failures=0, auto_rollback=True, gate_s=10.0)
    bench.step(0)
    first = bench.stage(rollout_id, 0)
    now = _pass_gate(bench, rollout_id, first, 1, 10)
    second = bench.stage(rollout_id, 1)
    bench.sink.take()
    updated, failing, in_flight = second[:2], second[2], second[3:]
    bench.update(updated, rollout_id)
    bench.report(failing, "FAILED", rollout_id, "self-test case 1: output differs by 40")
    bench.step(now + 1)
    assert bench.rollout(rollout_id).state == "halted" and bench.rollout(rollout_id).rollback
    assert by_action(bench.sink.take()) == {"rollback": set(first + updated), "cancel": set(in_flight)}

    for device_id in first + updated:
        bench.report(device_id, "ROLLED_BACK", rollout_id, "rollback requested")
    late = in_flight[0]  # cancelled too late: it switched anyway
    bench.report(late, "UPDATED", rollout_id)
    bench.step(now + 2)
    assert by_action(bench.sink.take()) == {"rollback": {late}}
    states = bench.states(rollout_id)
    assert {states[d] for d in first + updated} == {"rolled_back"}
    assert not any(bench.row(rollout_id, d).updated for d in first + updated)
    assert states[failing] == "failed" and states[late] == "rollback_sent"
    bench.step(now + 3)
    assert bench.sink.take() == []
    assert {states[d] for d in bench.stage(rollout_id, 2)} == {"pending"}
    assert "rollout.rollback" in bench.audit_actions()


@pytest.mark.parametrize(
    ("telemetry", "problem"),
    [
        ({"anomaly_rate": 0.4}, "anomaly rate 0.210 above 0.120"),
        ({"anomaly_rate": 0.02, "rejected": 30}, "reject rate"),
        ({"anomaly_rate": 0.02, "restart": True}, "restarted"),
        ({"anomaly_rate": 0.02, "model_version": OLD}, f"reports model version {OLD}"),
        ({"anomaly_rate": 0.1}, None),  # within baseline 0.02 + margin 0.1
    ],
    ids=["anomaly-spike", "rejects", "restart", "other-model", "within-margin"],
)
def test_unhealthy_telemetry_after_the_update_halts_and_rolls_back(
    bench: Bench, telemetry: dict[str, object], problem: str | None
) -> None:
    rollout_id = bench.create(gate_s=60.0)
    bench.step(0)
    (device,) = bench.stage(rollout_id, 0)
    bench.update([device], rollout_id)
    bench.step(1)
    bench.telemetry(device, 0.02, model_version=NEW)
    bench.telemetry(device, **telemetry)  # type: ignore[arg-type]
    bench.sink.take()
    bench.step(5)
    row = bench.row(rollout_id, device)
    if problem is None:
        assert row.state == "UPDATED" and bench.rollout(rollout_id).state == "running"
        bench.step(62)
        assert bench.row(rollout_id, device).state == "healthy" and bench.rollout(rollout_id).stage == 1
        return
    assert row.failed and row.reason is not None and problem in row.reason
    assert row.state == "rollback_sent" and bench.rollout(rollout_id).state == "halted"
    assert by_action(bench.sink.take()) == {"rollback": {device}}


def test_the_gate_needs_a_scoring_report_after_recommissioning(bench: Bench) -> None:
    rollout_id = bench.create(gate_s=10.0)
    bench.step(0)
    (device,) = bench.stage(rollout_id, 0)
    bench.update([device], rollout_id)
    bench.step(1)
    bench.telemetry(device, None, model_version=NEW, mode="commissioning")
    bench.step(20)
    assert bench.row(rollout_id, device).state == "UPDATED"  # no scoring report yet: no verdict
    bench.telemetry(device, 0.02, model_version=NEW)
    bench.step(21)
    assert bench.row(rollout_id, device).state == "healthy"


def test_a_device_that_does_not_answer_times_out_and_counts_as_failed(bench: Bench) -> None:
    rollout_id = bench.create(device_timeout_s=300.0, max_failures=0)
    bench.step(0)
    (device,) = bench.stage(rollout_id, 0)
    bench.sink.take()
    bench.report(device, "DOWNLOADING", rollout_id)
    bench.step(299)
    assert bench.row(rollout_id, device).state == "DOWNLOADING"
    bench.step(301)
    row = bench.row(rollout_id, device)
    assert row.state == "failed" and row.reason is not None and row.reason.startswith("timeout")
    assert "DOWNLOADING" in row.reason
    assert bench.rollout(rollout_id).state == "halted"
    assert by_action(bench.sink.take()) == {"cancel": {device}}


def test_pause_resume_abort(bench: Bench) -> None:
    rollout_id = bench.create(gate_s=10.0)
    bench.step(0)
    (first,) = bench.stage(rollout_id, 0)
    bench.sink.take()
    with transaction(bench.sessions) as session:
        rollouts.pause(session, bench.principal(session), rollout_id)
    _pass_gate(bench, rollout_id, [first], 1, 10)  # states are tracked while paused ...
    assert bench.row(rollout_id, first).state == "healthy"
    assert bench.sink.take() == [] and bench.rollout(rollout_id).stage == 0  # ... but nothing is sent
    with transaction(bench.sessions) as session, pytest.raises(ConflictError):
        rollouts.pause(session, bench.principal(session), rollout_id)

    with transaction(bench.sessions) as session:
        rollouts.resume(session, bench.principal(session), rollout_id)
    bench.step(13)
    second = bench.stage(rollout_id, 1)
    assert by_action(bench.sink.take()) == {"update": set(second)}

    with transaction(bench.sessions) as session:
        rollouts.abort(session, bench.principal(session), rollout_id, rollback=True)
    bench.step(14)
    assert by_action(bench.sink.take()) == {"cancel": set(second), "rollback": {first}}
    rollout = bench.rollout(rollout_id)
    assert rollout.state == "aborted" and rollout.rollback and rollout.finished_at is not None
    bench.step(15)
    assert bench.sink.take() == []
    for change in (rollouts.resume, rollouts.pause):
        with transaction(bench.sessions) as session, pytest.raises(ConflictError):
            change(session, bench.principal(session), rollout_id)
    actions = bench.audit_actions()
    assert [a for a in actions if a in {"rollout.pause", "rollout.resume", "rollout.abort"}] == [
        "rollout.pause",
        "rollout.resume",
        "rollout.abort",
    ]


def test_abort_without_rollback_leaves_updated_devices_alone(bench: Bench) -> None:
    rollout_id = bench.create(gate_s=10.0)
    bench.step(0)
    (first,) = bench.stage(rollout_id, 0)
    _pass_gate(bench, rollout_id, [first], 1, 10)
    bench.sink.take()
    with transaction(bench.sessions) as session:
        rollouts.abort(session, bench.principal(session), rollout_id, rollback=False)
    bench.step(20)
    assert by_action(bench.sink.take()) == {"cancel": set(bench.stage(rollout_id, 1))}
    assert bench.row(rollout_id, first).state == "healthy"


def test_a_new_engine_over_the_same_database_carries_on(any_bench: Bench) -> None:
    bench = any_bench
    rollout_id = bench.create(gate_s=10.0)
    bench.step(0)
    (first,) = bench.stage(rollout_id, 0)
    bench.sink.take()
    bench.update([first], rollout_id)
    bench.step(1)  # the old engine starts the gate ...
    bench.telemetry(first, 0.03, model_version=NEW)

    engine = make_engine(bench.url)  # ... a restarted server (new engine, new connections) finishes it
    try:
        restarted = bench.new_engine(make_sessionmaker(engine))
        bench.step(5, restarted)
        assert bench.sink.take() == []
        bench.step(12, restarted)
        assert bench.row(rollout_id, first).state == "healthy"
        assert by_action(bench.sink.take()) == {"update": set(bench.stage(rollout_id, 1))}
        bench.step(13, restarted)
        assert bench.sink.take() == []
    finally:
        engine.dispose()


def test_without_a_broker_nothing_is_sent_and_a_failed_publish_is_retried(bench: Bench) -> None:
    rollout_id = bench.create()
    (device,) = bench.stage(rollout_id, 0)
    bench.sink.enabled = False
    bench.step(0)
    assert bench.row(rollout_id, device).state == "pending"
    bench.sink.enabled, bench.sink.fail = True, True
    bench.step(1)
    row = bench.row(rollout_id, device)
    assert row.state == "pending" and row.sent_at is None
    bench.sink.fail = False
    bench.step(2)
    assert by_action(bench.sink.take()) == {"update": {device}}
    assert bench.row(rollout_id, device).state == "sent"


def test_ota_states_out_of_order_repeated_or_foreign_change_nothing(bench: Bench) -> None:
    rollout_id = bench.create()
    bench.step(0)
    (device,) = bench.stage(rollout_id, 0)
    other = bench.stage(rollout_id, 2)[0]  # not commanded yet
    bench.update([device], rollout_id)
    bench.report(device, "DOWNLOADING", rollout_id)  # late
    bench.report(device, "UPDATED", "999")  # no such rollout
    bench.report(device, "FAILED", "not-a-number", "x")
    bench.report(device, "FAILED", None, "x")
    bench.report(other, "UPDATED", rollout_id)
    assert bench.row(rollout_id, device).state == "UPDATED" and bench.row(rollout_id, device).updated
    assert bench.row(rollout_id, other).state == "pending"

    row = RolloutDevice(state="UPDATED", updated=True, failed=False, reason=None)
    assert not apply_state(row, "UPDATED", None) and not apply_state(row, "VERIFIED", None)
    assert apply_state(row, "ROLLED_BACK", "crashed while pending")
    assert (row.state, row.updated, row.reason) == ("failed", False, "ROLLED_BACK: crashed while pending")


def test_a_device_rolling_back_by_itself_counts_as_a_failure(bench: Bench) -> None:
    rollout_id = bench.create(max_failures=0)
    bench.step(0)
    (device,) = bench.stage(rollout_id, 0)
    bench.update([device], rollout_id)
    bench.step(1)
    bench.report(device, "ROLLED_BACK", rollout_id, "boot attempts exceeded while pending")
    bench.sink.take()
    bench.step(2)
    assert bench.rollout(rollout_id).state == "halted"
    assert bench.sink.take() == []  # it is back on its old model already: nothing to roll back


def test_a_device_cannot_be_in_two_active_rollouts(bench: Bench) -> None:
    bench.create()
    with pytest.raises(ConflictError, match="is in rollout"):
        bench.create()
