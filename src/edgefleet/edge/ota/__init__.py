"""Over-the-air model updates on the device: A/B slots, resumable signed downloads, rollback."""

from edgefleet.edge.ota.agent import OtaAgent
from edgefleet.edge.ota.crash import CRASH_ENV, CRASH_POINTS, crash_point
from edgefleet.edge.ota.download import DownloadOptions, download_package
from edgefleet.edge.ota.errors import CancelledError, DownloadError, OtaError, SlotError, VerificationError
from edgefleet.edge.ota.journal_keeper import StateReport
from edgefleet.edge.ota.slots import OtaJournal, SlotInfo, SlotStore
from edgefleet.edge.ota.verify import DeviceProfile, check_compatible, verify_package, version_at_least

__all__ = [
    "CRASH_ENV",
    "CRASH_POINTS",
    "CancelledError",
    "DeviceProfile",
    "DownloadError",
    "DownloadOptions",
    "OtaAgent",
    "OtaError",
    "OtaJournal",
    "SlotError",
    "SlotInfo",
    "SlotStore",
    "StateReport",
    "VerificationError",
    "check_compatible",
    "crash_point",
    "download_package",
    "verify_package",
    "version_at_least",
]
