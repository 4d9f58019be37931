"""The job engine and what it is made of (job directories, scripts, status)."""
from .engine import JobEngine

__all__ = ["JobEngine"]
