"""The OTA agent: the device side of a model update, as a journaled state machine.

    update:  DOWNLOADING -> DOWNLOADED -> VERIFIED -> (write the inactive slot) UPDATING
             -> switch -> pending -> UPDATED           any refusal: FAILED (active model unchanged)
    pending: a crash (more than `max_pending_boots` restarts), an inference error, non-finite
             scores or most windows rejected -> back to the previous slot: ROLLED_BACK
    rollback (from the server): back to the previous slot -> ROLLED_BACK "requested"
    cancel:  stops a download or verification in progress -> FAILED "cancelled"

Downloads and verification run in the agent's worker thread; the switch and the pending checks run
on the device thread (`service`, `after_windows`), which owns the DeviceCore. Each step is written
to `state.json` before it is reported, so a process killed at any point restarts on a verified
model (`boot`) and resumes the update where the journal says it was.
"""

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Final

from edgefleet.contracts import OtaCommand
from edgefleet.edge.errors import EdgeError
from edgefleet.edge.ota.crash import crash_point
from edgefleet.edge.ota.download import download_package
from edgefleet.edge.ota.errors import CancelledError, OtaError, SlotError, VerificationError
from edgefleet.edge.ota.journal_keeper import OtaJournalKeeper, StateReport, model_of
from edgefleet.edge.ota.slots import Job, SlotInfo
from edgefleet.edge.ota.verify import verify_package
from edgefleet.edge.pipeline import WindowResult

log = logging.getLogger(__name__)

MAX_VERIFY_ATTEMPTS: Final = 3  # a package that kills the process while verifying is refused


class OtaAgent(OtaJournalKeeper):
    """One per device. `boot()` once, then `start()`; feed it with `submit()`."""

    # -- the device thread ----------------------------------------------------------------------------

    def service(self) -> None:
        """Run what the worker left for the device thread (switches, rollbacks). Call every step."""
        while True:
            try:
                action = self._device_actions.get_nowait()
            except queue.Empty:
                return
            action()

    def _run_on_device(self, action: Callable[[], None]) -> bool:
        """Hand `action` to the device thread and wait for it (False if the agent stops first)."""
        done = threading.Event()

        def wrapped() -> None:
            try:
                action()
            finally:
                done.set()

        self._device_actions.put(wrapped)
        while not done.wait(0.1):
            if self._stop.is_set():
                return False
        return True

    def _swap_to_active(self) -> None:
        """Load the active model into the device (lock held); a load failure rolls back further."""
        while True:
            bundle = self._bundle_for_active()
            if self.swap is None:
                return
            try:
                self.swap(bundle)
                self._reset_pending()
                return
            except EdgeError as err:
                if self.journal.active is None:
                    raise
                self._rollback_journal(f"load_failed: {err}", None, None)

    def after_windows(self, results: Sequence[WindowResult]) -> None:
        """Count healthy windows of a pending model; confirm it, or roll back on a failed check."""
        if not self.journal.pending or not results:
            return
        for result in results:
            if result.state == "rejected":
                self._pending_rejected += 1
            elif result.score is not None and not math.isfinite(result.score):
                self.health_failed(f"health: non-finite score in window {result.window}")
                return
            else:
                self._pending_ok += 1
        if self._pending_ok:
            crash_point("pending")
        seen = self._pending_ok + self._pending_rejected
        if seen < self.config.pending_windows:
            return
        if self._pending_rejected * 2 > seen:
            self.health_failed(f"guard_rejects: {self._pending_rejected} of {seen} windows rejected")
        elif self.config.pending_s is None or time.monotonic() - self._pending_t0 >= self.config.pending_s:
            self._confirm()

    def health_failed(self, reason: str) -> None:
        """An inference or health check failed while pending: back to the previous model."""
        with self._lock:
            if not self.journal.pending:
                return
            self._rollback_journal(reason, None, None)
            self._swap_to_active()

    def _confirm(self) -> None:
        with self._lock:
            j = self.journal
            slot = j.active
            info = j.slots.get(slot) if slot is not None else None
            if slot is None or info is None:
                return
            j.slots[slot] = info.model_copy(update={"confirmed": True})
            command_id, rollout_id = j.pending_command_id, j.pending_rollout_id
            j.pending, j.pending_boots = False, 0
            j.pending_command_id = j.pending_rollout_id = None
            self._final(command_id, "UPDATED", (info.model_id, info.model_version), rollout_id)

    # -- commands (any thread) --------------------------------------------------------------------------

    def submit(self, command: OtaCommand) -> None:
        """Take a command from the link. Cancel and superseding act at once; the rest is queued."""
        current = self._current
        if command.action == "cancel":
            if current is not None:
                self._cancel_reason = "cancelled"
                self._cancel.set()
            else:
                log.info("OTA cancel %s: nothing in progress", command.command_id)
            return
        if command.action == "update" and current is not None and command.manifest is not None:
            if command.manifest.sha256 == current.manifest.sha256:
                log.info("OTA update %s: already in progress", command.command_id)
                return
            self._cancel_reason = "superseded"
            self._cancel.set()
        self._inbox.put(command)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ota", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._cancel_reason = "stopped"
        self._cancel.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def idle(self) -> bool:
        """Nothing queued or in progress (tests and the CLI wait for it)."""
        return self._current is None and self._inbox.empty() and self.journal.job is None

    # -- the worker thread --------------------------------------------------------------------------------

    def _run(self) -> None:
        job = self.journal.job
        if job is not None:
            log.info("resuming the update to %s %s (%s)", *model_of(job.manifest), job.phase)
            self._work(job)
        while not self._stop.is_set():
            try:
                command = self._inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self._handle(command)
            except Exception:  # the top of a long-running loop: log, keep the agent alive
                log.exception("OTA command %s failed", command.command_id)

    def _handle(self, command: OtaCommand) -> None:
        j = self.journal
        answer = j.answered.get(command.command_id)
        if answer is not None:  # a command seen before (redelivered, retained): the same answer
            self.publish(
                StateReport(
                    answer.state,  # type: ignore[arg-type]
                    answer.rollout_id,
                    answer.model_id,
                    answer.model_version,
                    j.active,
                    None,
                    answer.reason,
                )
            )
            return
        if command.action == "rollback":
            self._run_on_device(lambda: self._requested_rollback(command))
            return
        manifest = command.manifest
        if command.action != "update" or manifest is None:
            return
        wanted = model_of(manifest)
        if j.pending:
            info = j.slots.get(j.active) if j.active else None
            if info is not None and (info.model_id, info.model_version) == wanted:
                log.info("OTA update %s: %s %s is already pending", command.command_id, *wanted)
                return
            with self._lock:
                self._final(
                    command.command_id,
                    "FAILED",
                    wanted,
                    command.rollout_id,
                    f"busy: {info.model_id if info else '?'} is pending confirmation",
                )
            return
        if self.running_model() == wanted:
            with self._lock:
                self._final(command.command_id, "UPDATED", wanted, command.rollout_id)
            return
        with self._lock:
            job = Job(
                command_id=command.command_id,
                rollout_id=command.rollout_id,
                manifest=manifest,
                slot=j.inactive_slot(),
            )
            j.job = job
            self.store.save(j)
        self._work(job)

    def _requested_rollback(self, command: OtaCommand) -> None:
        with self._lock:
            j = self.journal
            if j.active is None:
                model = self.running_model() or (None, None)
                self._final(
                    command.command_id,
                    "ROLLED_BACK",
                    model,
                    command.rollout_id,
                    "requested: already on the factory model",
                )
                return
            self._rollback_journal("requested", command.command_id, command.rollout_id)
            self._swap_to_active()

    def _check_cancel(self) -> None:
        if self._cancel.is_set():
            raise CancelledError(self._cancel_reason, f"the update was {self._cancel_reason}")

    def _work(self, job: Job) -> None:
        self._cancel.clear()
        self._cancel_reason = "cancelled"
        self._current = job
        manifest = job.manifest
        model = model_of(manifest)
        part = self.store.part_path(job.slot)
        try:
            if job.phase != "downloading" and not part.exists() and job.phase != "switching":
                job.phase = "downloading"
            if job.phase == "downloading":
                self._download(job)
                self._set_phase(job, "downloaded")
                self._report("DOWNLOADED", model, job.rollout_id, progress=1.0)
                crash_point("downloaded")
            if job.phase in ("downloaded", "verified"):
                self._check_cancel()
                self._verify_and_write(job)
            if job.phase == "switching" and not self._run_on_device(lambda: self._switch(job)):
                return  # stopping: the journal finishes the switch at the next boot
        except CancelledError:
            reason = self._cancel_reason
            if reason == "stopped":
                return  # the job stays journaled and resumes at the next start
            self._fail(job, CancelledError(reason, f"the update was {reason}"))
        except OtaError as err:
            self._fail(job, err)
        finally:
            self._current = None

    def _set_phase(self, job: Job, phase: str) -> None:
        with self._lock:
            job.phase = phase  # type: ignore[assignment]
            self.journal.job = job
            self.store.save(self.journal)

    def _fail(self, job: Job, err: OtaError) -> None:
        with self._lock:
            if self.journal.job is not None and self.journal.job.command_id == job.command_id:
                self.journal.job = None
            self.store.discard_part(job.slot)
            self._final(job.command_id, "FAILED", model_of(job.manifest), job.rollout_id, err.report)

    def _download(self, job: Job) -> None:
        manifest = job.manifest
        part = self.store.part_path(job.slot)
        model = model_of(manifest)
        last_decile = -1

        def report(have: int, size: int) -> None:
            nonlocal last_decile
            decile = int(10 * have / size)
            if decile > last_decile:
                last_decile = decile
                self._report("DOWNLOADING", model, job.rollout_id, progress=min(1.0, have / size))

        def progress(have: int, size: int) -> None:
            report(have, size)
            if have < size:
                crash_point("downloading")  # part of the package is on disk

        have = part.stat().st_size if part.exists() else 0
        report(min(have, manifest.size), manifest.size)
        download_package(
            manifest,
            part,
            self.download_options,
            cancel=self._cancel,
            progress=progress,
            transport=self.transport,
        )

    def _verify_and_write(self, job: Job) -> None:
        manifest = job.manifest
        model = model_of(manifest)
        with self._lock:
            job.verify_attempts += 1
            self.journal.job = job
            self.store.save(self.journal)
        if job.verify_attempts > MAX_VERIFY_ATTEMPTS:
            raise VerificationError(
                "verify_crashed", f"the device restarted {job.verify_attempts - 1} times while verifying"
            )
        try:
            data = self.store.part_path(job.slot).read_bytes()
        except OSError as err:
            raise SlotError("storage", f"cannot read the downloaded package: {err.strerror}") from err
        package = verify_package(
            data,
            manifest,
            self.config.trusted_keys,
            self.profile,
            require_self_test=self.config.require_self_test,
            running=self.running_model(),
            allow_downgrade=self.config.allow_downgrade,
        )
        self._set_phase(job, "verified")
        self._report("VERIFIED", model, job.rollout_id)
        crash_point("verified")
        self._check_cancel()
        with self._lock:  # the slot is about to be overwritten: it is no longer a rollback target
            self.journal.slots.pop(job.slot, None)
            if self.journal.previous == job.slot:
                self.journal.previous = None
            self.store.save(self.journal)
        info: SlotInfo = self.store.write_slot(job.slot, package, manifest.sha256)
        with self._lock:
            self.journal.slots[job.slot] = info
            job.phase = "switching"
            self.journal.job = job
            self.store.save(self.journal)
        self._report("UPDATING", model, job.rollout_id)
        crash_point("switching")

    def _switch(self, job: Job) -> None:
        """On the device thread: the atomic switch, then the new model runs, pending."""
        with self._lock:
            if self.journal.job is None or self.journal.job.command_id != job.command_id:
                return
            self._commit_switch(job)
            try:
                self._swap_to_active()
            except EdgeError:
                log.exception("cannot load any model after the switch")
