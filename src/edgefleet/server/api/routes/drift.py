"""Drift per device and model version, against the model card."""

from fastapi import APIRouter

router = APIRouter(prefix="/drift", tags=["drift"])
