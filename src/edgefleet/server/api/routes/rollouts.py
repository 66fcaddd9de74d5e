"""Rollouts: staged model updates with health gates; pause, resume, abort."""

from fastapi import APIRouter

router = APIRouter(prefix="/rollouts", tags=["rollouts"])
