"""Tool dependency resolution through galaxy-tool-util.

galaxy-tool-util is imported on the first job that carries requirements,
so a daemon that never resolves dependencies does not pay its memory.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Any

log = logging.getLogger(__name__)


class DependencyResolver:
    def __init__(self, tool_dependency_dir: str | None, dependency_resolution: dict | None = None,
                 conf_file: str | None = None, passthrough: dict[str, Any] | None = None):
        self.tool_dependency_dir = tool_dependency_dir
        self.dependency_resolution = dependency_resolution
        self.conf_file = conf_file
        self.passthrough = dict(passthrough or {})
        self._manager = None
        self._lock = threading.Lock()

    def _build(self):
        from galaxy.tool_util.deps import build_dependency_manager

        app_config: dict[str, Any] = {"conda_auto_init": False, "conda_auto_install": False}
        app_config.update(self.passthrough)
        if self.tool_dependency_dir:
            app_config["tool_dependency_dir"] = self.tool_dependency_dir
        if self.dependency_resolution:
            app_config["dependency_resolution"] = self.dependency_resolution
        conf_file = self.conf_file if self.conf_file and os.path.exists(self.conf_file) else None
        return build_dependency_manager(app_config_dict=app_config, conf_file=conf_file,
                                        default_tool_dependency_dir=self.tool_dependency_dir)

    @property
    def manager(self):
        with self._lock:
            if self._manager is None:
                self._manager = self._build()
            return self._manager

    def shell_commands(self, description: dict | None, job_directory: str, working_directory: str,
                       tool_directory: str) -> list[str]:
        """Shell commands that make the described requirements available."""
        if not description or not description.get("requirements"):
            return []
        from galaxy.tool_util.deps.dependencies import DependenciesDescription

        parsed = DependenciesDescription.from_dict(description)
        return self.manager.dependency_shell_commands(
            parsed.requirements,
            installed_tool_dependencies=parsed.installed_tool_dependencies,
            tool_dir=tool_directory,
            job_directory=job_directory,
            working_directory=working_directory,
        )
