"""Device-facing OTA: package download with the device's credentials (resumable)."""

from fastapi import APIRouter

router = APIRouter(prefix="/ota", tags=["ota"])
