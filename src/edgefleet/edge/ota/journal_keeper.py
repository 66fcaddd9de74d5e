"""The OTA journal keeper: the part of the agent that owns `state.json` and what it reports.

Every change of the active slot (a finished switch, a rollback, a boot that settles what an
interruption left) happens here, with the journal saved before the state is published.
"""

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from edgefleet.contracts import ModelManifest, OtaCommand
from edgefleet.contracts.messages import OtaStateName
from edgefleet.edge.config import OtaConfig
from edgefleet.edge.model import ModelBundle
from edgefleet.edge.ota.download import DownloadOptions
from edgefleet.edge.ota.errors import SlotError, VerificationError
from edgefleet.edge.ota.slots import SLOT_NAMES, Answer, Job, OtaJournal, SlotName, SlotStore
from edgefleet.edge.ota.verify import DeviceProfile, check_compatible

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StateReport:
    """One OtaState to publish (the device adds device_id, seq, ts)."""

    state: OtaStateName
    rollout_id: str | None = None
    model_id: str | None = None
    model_version: str | None = None
    active_slot: SlotName | None = None
    progress: float | None = None
    reason: str | None = None


Publisher = Callable[[StateReport], None]
Swapper = Callable[[ModelBundle | None], None]


class OtaJournalKeeper:
    """The journal and what changes it atomically: boot settling, switch, rollback, reports.

    `OtaAgent` adds the threads (device and worker) on top; this half starts no thread.
    """

    def __init__(
        self,
        config: OtaConfig,
        directory: Path,
        profile: DeviceProfile,
        publish: Publisher,
        download: DownloadOptions,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.config = config
        self.profile = profile
        self.publish = publish
        self.download_options = download
        self.transport = transport
        self.store = SlotStore(directory)
        self.journal: OtaJournal = self.store.load()
        self.factory: ModelBundle | None = None
        self.swap: Swapper | None = None
        self._lock = threading.RLock()
        self._inbox: queue.SimpleQueue[OtaCommand] = queue.SimpleQueue()
        self._device_actions: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._cancel = threading.Event()
        self._cancel_reason = "cancelled"
        self._current: Job | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending_ok = 0
        self._pending_rejected = 0
        self._pending_t0 = time.monotonic()

    # -- what runs now -----------------------------------------------------------------------------

    @property
    def active_slot(self) -> SlotName | None:
        return self.journal.active

    @property
    def pending(self) -> bool:
        return self.journal.pending

    def running_model(self) -> tuple[str, str] | None:
        info = self.journal.slots.get(self.journal.active) if self.journal.active else None
        if info is not None:
            return info.model_id, info.model_version
        if self.journal.active is None and self.factory is not None:
            return self.factory.card.model_id, self.factory.card.model_version
        return None

    def _report(
        self,
        state: OtaStateName,
        model: tuple[str | None, str | None],
        rollout_id: str | None,
        *,
        progress: float | None = None,
        reason: str | None = None,
    ) -> None:
        report = StateReport(state, rollout_id, model[0], model[1], self.journal.active, progress, reason)
        log.info("OTA %s %s %s%s", state, model[0], model[1], f" ({reason})" if reason else "")
        self.publish(report)

    def _answer(self, command_id: str | None, report: StateReport) -> None:
        """Remember the final state a command got (call with the lock held; saves the journal)."""
        if command_id is not None:
            self.journal.remember(
                command_id,
                Answer(
                    state=report.state,
                    reason=report.reason,
                    model_id=report.model_id,
                    model_version=report.model_version,
                    rollout_id=report.rollout_id,
                ),
            )
        self.store.save(self.journal)
        self.publish(report)
        log.info(
            "OTA %s %s %s (%s)", report.state, report.model_id, report.model_version, report.reason or ""
        )

    def _final(
        self,
        command_id: str | None,
        state: OtaStateName,
        model: tuple[str | None, str | None],
        rollout_id: str | None,
        reason: str | None = None,
    ) -> None:
        report = StateReport(state, rollout_id, model[0], model[1], self.journal.active, None, reason)
        self._answer(command_id, report)

    # -- boot (device thread, before the DeviceCore exists) -----------------------------------------

    def boot(self, factory: ModelBundle | None) -> ModelBundle | None:
        """Settle what an interruption left, count a pending boot, return the model to run."""
        self.factory = factory
        with self._lock:
            j = self.journal
            job = j.job
            switched_now = False
            if job is not None and job.phase == "switching":
                info = j.slots.get(job.slot)
                if (
                    info is not None
                    and info.package_sha256 == job.manifest.sha256
                    and self.store.check_slot(job.slot, info) is None
                ):
                    log.info("finishing the switch to slot %s interrupted by a restart", job.slot)
                    self._report("UPDATING", model_of(job.manifest), job.rollout_id)
                    self._commit_switch(job)
                    switched_now = True  # the new model has not run yet: not a pending boot
                else:
                    job.phase = "downloaded"  # the slot was not completely written: verify again
                    self.store.save(j)
            if j.job is None:
                for slot in SLOT_NAMES:
                    self.store.discard_part(slot)
            if j.pending and not switched_now:
                j.pending_boots += 1
                self.store.save(j)
                if j.pending_boots > self.config.max_pending_boots:
                    self._rollback_journal(
                        f"pending_crash: restarted {j.pending_boots} times before the model was confirmed",
                        None,
                        None,
                    )
            return self._bundle_for_active()

    def boot_failed(self, err: Exception) -> ModelBundle | None:
        """The booted slot's model did not load into the device: roll back, return the next one."""
        with self._lock:
            self._rollback_journal(f"load_failed: {err}", None, None)
            return self._bundle_for_active()

    def _bundle_for_active(self) -> ModelBundle | None:
        """The active slot's model; a slot that is damaged or does not fit rolls back (repeatedly)."""
        while True:
            slot = self.journal.active
            if slot is None:
                return self.factory
            info = self.journal.slots.get(slot)
            try:
                if info is None:
                    raise SlotError("slot_corrupt", f"slot {slot} has no record")
                bundle = self.store.load_slot(slot, info)
                try:
                    check_compatible(bundle.card, self.profile)
                except VerificationError as err:
                    raise SlotError(err.reason, f"slot {slot}: {err}") from err
                return bundle
            except SlotError as err:
                log.error("cannot run slot %s: %s", slot, err)
                self._rollback_journal(err.report, None, None)

    def _commit_switch(self, job: Job) -> None:
        """The switch itself: one atomic journal write (lock held)."""
        j = self.journal
        j.previous, j.active = j.active, job.slot
        j.pending, j.pending_boots = True, 0
        j.pending_command_id, j.pending_rollout_id = job.command_id, job.rollout_id
        j.job = None
        self.store.save(j)
        self.store.discard_part(job.slot)
        self._reset_pending()

    def _rollback_journal(self, reason: str, command_id: str | None, rollout_id: str | None) -> None:
        """Make the previous slot (or the factory model) active and report ROLLED_BACK (lock held)."""
        j = self.journal
        bad = j.active
        info = j.slots.pop(bad, None) if bad is not None else None
        target = j.previous if j.previous is not None and j.previous in j.slots else None
        was_pending = j.pending
        command_id = command_id or (j.pending_command_id if was_pending else None)
        rollout_id = rollout_id or (j.pending_rollout_id if was_pending else None)
        j.active, j.previous = target, None
        j.pending, j.pending_boots = False, 0
        j.pending_command_id = j.pending_rollout_id = None
        model = (info.model_id, info.model_version) if info else (None, None)
        self._final(command_id, "ROLLED_BACK", model, rollout_id, reason)

    def _reset_pending(self) -> None:
        self._pending_ok = self._pending_rejected = 0
        self._pending_t0 = time.monotonic()


def model_of(manifest: ModelManifest) -> tuple[str, str]:
    return manifest.model_id, manifest.model_version
