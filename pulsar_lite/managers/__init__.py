"""Manager registry: one table, plain data.

A manager type names the module and class that implement it and the
third-party packages it needs. Nothing is imported until a configured
manager is built, and a missing package gives an error naming the manager
type and the package (never a silently skipped plugin).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from ..config.schema import Option
from ..errors import ConfigError, ManagerUnavailable


@dataclass(frozen=True)
class ManagerSpec:
    type: str
    target: str  # "module:Class"
    requires: tuple[tuple[str, str], ...] = ()  # (import name, PyPI package)
    options: dict[str, Option] = field(default_factory=dict)
    summary: str = ""


REGISTRY: dict[str, ManagerSpec] = {
    "queued_python": ManagerSpec(
        type="queued_python",
        target="pulsar_lite.managers.queued_python:QueuedPythonManager",
        summary="runs job scripts on this host, num_concurrent_jobs at a time",
    ),
}


def manager_spec(manager_type: str, source: str = "configuration", manager: str = "?") -> ManagerSpec:
    try:
        return REGISTRY[manager_type]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ConfigError(
            f"{source}: manager '{manager}' has unknown type '{manager_type}' (known types: {known})"
        ) from None


def manager_class(manager_type: str, manager: str = "?"):
    spec = manager_spec(manager_type, manager=manager)
    for module_name, package in spec.requires:
        try:
            importlib.import_module(module_name)
        except ImportError as exc:
            raise ManagerUnavailable(
                f"manager '{manager}' (type {manager_type}) needs the Python package '{package}', "
                f"which cannot be imported: {exc}. Install it with: pip install {package}"
            ) from None
    module_name, class_name = spec.target.split(":")
    return getattr(importlib.import_module(module_name), class_name)
