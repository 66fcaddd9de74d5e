"""The camera node: frame sources, device-exact preprocessing, person detection, QR provisioning."""

from edgefleet.edge.camera.detector import DetectionConfig, PresenceTracker
from edgefleet.edge.camera.frames import FolderSource, FrameSource, ListSource, VideoSource, synthetic_frames
from edgefleet.edge.camera.node import CameraConfig, CameraNode
from edgefleet.edge.camera.person import PersonModel
from edgefleet.edge.camera.preprocess import check_camera_model_input, frame_to_input

__all__ = [
    "CameraConfig",
    "CameraNode",
    "DetectionConfig",
    "FolderSource",
    "FrameSource",
    "ListSource",
    "PersonModel",
    "PresenceTracker",
    "VideoSource",
    "check_camera_model_input",
    "frame_to_input",
    "synthetic_frames",
]
