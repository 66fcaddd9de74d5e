"""The model registry: upload signed packages, list, compare, default per device kind."""

from fastapi import APIRouter

router = APIRouter(prefix="/models", tags=["models"])
