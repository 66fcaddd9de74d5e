"""A/B model slots on the device's storage and the journal (`state.json`) that makes updates atomic.

Layout of `<ota dir>`:

    state.json        which slot is active, which is previous, pending or confirmed, the update job
    A/, B/            one model each: model.tflite, model_card.json, package.sha256
    <slot>/package.part   a download in progress (always in the inactive slot)

Every file is written atomically (temporary file, fsync, rename, fsync of the directory), so a
power cut leaves either the old or the new version of each file, never a torn one. `active=None`
means the factory model (the model directory the device was started with).
"""

import logging
import os
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgefleet.contracts import ModelManifest, ModelPackage, sha256_hex
from edgefleet.edge.errors import EdgeError
from edgefleet.edge.model import CARD_FILE, MODEL_FILE, ModelBundle, load_model_dir
from edgefleet.edge.ota.errors import SlotError

log = logging.getLogger(__name__)

SlotName = Literal["A", "B"]
SLOT_NAMES: Final[tuple[SlotName, SlotName]] = ("A", "B")
Phase = Literal["downloading", "downloaded", "verified", "switching"]
STATE_FILE: Final = "state.json"
PART_FILE: Final = "package.part"
PACKAGE_SHA_FILE: Final = "package.sha256"
MAX_ANSWERS: Final = 32


class SlotInfo(BaseModel):
    """What a slot holds; recorded only once its files are completely written."""

    model_config = ConfigDict(extra="forbid")

    model_id: str
    model_version: str
    package_sha256: str
    tflite_sha256: str
    card_sha256: str
    confirmed: bool = False


class Job(BaseModel):
    """The update in progress, journaled at each phase so that a restart resumes it."""

    model_config = ConfigDict(extra="forbid")

    command_id: str
    rollout_id: str | None = None
    manifest: ModelManifest
    slot: SlotName
    phase: Phase = "downloading"
    verify_attempts: int = 0


class Answer(BaseModel):
    """The final state an OTA command got (re-sent when the same command arrives again)."""

    model_config = ConfigDict(extra="forbid")

    state: str
    reason: str | None = None
    model_id: str | None = None
    model_version: str | None = None
    rollout_id: str | None = None


class OtaJournal(BaseModel):
    """The content of `state.json`."""

    model_config = ConfigDict(extra="forbid")

    format: Literal[1] = 1
    active: SlotName | None = None
    previous: SlotName | None = Field(default=None, description="where a rollback goes; None = factory")
    pending: bool = False
    pending_boots: int = 0
    pending_command_id: str | None = None
    pending_rollout_id: str | None = None
    slots: dict[SlotName, SlotInfo] = Field(default_factory=dict)
    job: Job | None = None
    answered: dict[str, Answer] = Field(default_factory=dict)

    def inactive_slot(self) -> SlotName:
        if self.active is not None:
            return "B" if self.active == "A" else "A"
        return "B" if self.previous == "A" else "A"

    def remember(self, command_id: str, answer: Answer) -> None:
        self.answered.pop(command_id, None)
        self.answered[command_id] = answer
        while len(self.answered) > MAX_ANSWERS:
            self.answered.pop(next(iter(self.answered)))


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves the old or the new content, nothing between."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
        fsync_dir(path.parent)
    except OSError as err:
        raise SlotError("storage", f"cannot write {path}: {err.strerror}") from err


class SlotStore:
    """The two slots and the journal under one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        try:
            for slot in SLOT_NAMES:
                (self.directory / slot).mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise SlotError("storage", f"cannot create OTA slots in {self.directory}: {err}") from err

    @property
    def state_path(self) -> Path:
        return self.directory / STATE_FILE

    def load(self) -> OtaJournal:
        """The journal; a missing one is a fresh device, a corrupt one falls back to the factory model."""
        try:
            return OtaJournal.model_validate_json(self.state_path.read_bytes())
        except FileNotFoundError:
            return OtaJournal()
        except (OSError, ValidationError) as err:
            log.error(
                "OTA journal %s unreadable (%s); falling back to the factory model", self.state_path, err
            )
            try:
                self.state_path.replace(self.state_path.with_suffix(".corrupt"))
            except OSError:
                log.warning("cannot move the unreadable journal aside", exc_info=True)
            return OtaJournal()

    def save(self, journal: OtaJournal) -> None:
        atomic_write(self.state_path, journal.model_dump_json(indent=1).encode())

    def slot_dir(self, slot: SlotName) -> Path:
        return self.directory / slot

    def part_path(self, slot: SlotName) -> Path:
        return self.slot_dir(slot) / PART_FILE

    def discard_part(self, slot: SlotName) -> None:
        self.part_path(slot).unlink(missing_ok=True)

    def write_slot(self, slot: SlotName, package: ModelPackage, package_sha256: str) -> SlotInfo:
        """Write a verified package's model and card into `slot`; returns what to journal."""
        directory = self.slot_dir(slot)
        atomic_write(directory / MODEL_FILE, package.tflite)
        atomic_write(directory / CARD_FILE, package.card_json)
        atomic_write(directory / PACKAGE_SHA_FILE, (package_sha256 + "\n").encode())
        return SlotInfo(
            model_id=package.card.model_id,
            model_version=package.card.model_version,
            package_sha256=package_sha256,
            tflite_sha256=sha256_hex(package.tflite),
            card_sha256=package.card_sha256,
        )

    def check_slot(self, slot: SlotName, info: SlotInfo) -> str | None:
        """None if the slot's files are intact, else what is wrong."""
        directory = self.slot_dir(slot)
        expected = {MODEL_FILE: info.tflite_sha256, CARD_FILE: info.card_sha256}
        for name, digest in expected.items():
            try:
                data = (directory / name).read_bytes()
            except OSError as err:
                return f"slot {slot}: cannot read {name}: {err.strerror}"
            if sha256_hex(data) != digest:
                return f"slot {slot}: {name} does not match its recorded sha256"
        return None

    def load_slot(self, slot: SlotName, info: SlotInfo) -> ModelBundle:
        problem = self.check_slot(slot, info)
        if problem:
            raise SlotError("slot_corrupt", problem)
        try:
            return load_model_dir(self.slot_dir(slot))
        except EdgeError as err:
            raise SlotError("slot_corrupt", f"slot {slot}: {err}") from err
