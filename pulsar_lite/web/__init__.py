"""The REST face."""
from .app import RestApp

__all__ = ["RestApp"]
