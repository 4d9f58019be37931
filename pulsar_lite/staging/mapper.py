"""Server-side file action mapping (the client's ``action_mapper``, re-read on the server).

The client serialises its mapper into ``remote_staging.action_mapper``; after a
job ends the server resolves an action for every output exactly as the
client would, and moves the bytes for the *remote* actions itself.
"""
from __future__ import annotations

import fnmatch
import os
import re
from urllib.parse import urlencode

DEFAULT_TYPES = ("input", "config", "tool", "workdir", "jobdir", "metadata", "output", "output_workdir",
                 "output_metadata", "output_jobdir")
ALL_TYPES = DEFAULT_TYPES + ("unstructured", "container")
#: a resolved ``none`` becomes ``copy`` for these (the job directory is never shared)
WORKDIR_CLASS = frozenset({"workdir", "jobdir", "metadata", "output_workdir", "output_metadata", "output_jobdir"})

#: actions where the client moves the bytes (over REST or a shared filesystem)
LOCAL_ACTIONS = frozenset({"transfer", "copy"})
#: actions that move nothing
NO_STAGING_ACTIONS = frozenset({"none", "rewrite"})
REMOTE_TRANSFER_ACTIONS = frozenset({"remote_transfer", "remote_transfer_tus"})
#: actions the server carries out over ssh with the mapper's ssh_key, ssh_user, ssh_host, ssh_port
SSH_ACTIONS = frozenset({"remote_rsync_transfer", "remote_scp_transfer"})
#: what the client writes for an ssh setting it leaves to the mapper's default
UNSET = "__UNSET__"


def _types(spec) -> set[str]:
    if spec is None:
        return set(DEFAULT_TYPES)
    if isinstance(spec, (list, tuple)):
        names = [str(s) for s in spec]
    else:
        names = [s.strip() for s in str(spec).split(",") if s.strip()]
    result: set[str] = set()
    for name in names:
        if name == "*defaults*":
            result.update(DEFAULT_TYPES)
        elif name == "*any*":
            result.update(ALL_TYPES)
        else:
            result.add(name)
    return result


class _PathRule:
    def __init__(self, definition: dict):
        self.definition = definition
        self.action = definition.get("action") or "transfer"
        self.types = _types(definition.get("path_types"))
        self.path = definition.get("path")
        self.match_type = definition.get("match_type") or "prefix"
        self.depth = int(definition.get("depth") or 0)
        if self.path is not None and self.match_type == "regex":
            self._regex = re.compile(self.path)
        elif self.path is not None and self.match_type == "prefix":
            self._prefix = os.path.abspath(self.path)

    def matches(self, path: str, path_type: str) -> bool:
        if path_type not in self.types:
            return False
        if self.path is None:
            return True
        if self.match_type == "prefix":
            return path.startswith(self._prefix)
        if self.match_type == "glob":
            return fnmatch.fnmatch(path, self.path)
        if self.match_type == "regex":
            return self._regex.match(path) is not None
        return False

    def kwargs(self) -> dict:
        skip = {"action", "path_types", "match_type", "depth", "path"}
        return {k: v for k, v in self.definition.items() if k not in skip}


class ActionMapper:
    def __init__(self, serialized: dict | None):
        serialized = serialized or {}
        self.default_action = serialized.get("default_action") or "transfer"
        self.files_endpoint = serialized.get("files_endpoint")
        self.ssh = {k: serialized.get(k) for k in ("ssh_key", "ssh_user", "ssh_port", "ssh_host")}
        self.rules = [_PathRule(d) for d in serialized.get("paths") or [] if isinstance(d, dict)]

    def acts_on_server(self) -> bool:
        """Whether any path can resolve to an action the server carries out (a remote one); when not,
        the client moves every byte and server-side staging has nothing to do."""
        passive = LOCAL_ACTIONS | NO_STAGING_ACTIONS
        return self.default_action not in passive or any(rule.action not in passive for rule in self.rules)

    def action(self, path: str, path_type: str) -> dict:
        """The action dict for a (client path, type), as the client would resolve it."""
        action_type = None
        extra: dict = {}
        for rule in self.rules:
            if rule.matches(path, path_type):
                action_type = rule.action
                extra = rule.kwargs()
                break
        if action_type is None:
            action_type = self.default_action if path_type in DEFAULT_TYPES else "none"
        if action_type == "none" and path_type in WORKDIR_CLASS:
            action_type = "copy"
        action = {"action_type": action_type, "path": path, "source": {"path": path}, **extra}
        if action_type in SSH_ACTIONS:
            for key, value in self.ssh.items():
                if action.get(key) in (None, UNSET):
                    action[key] = value
        if action_type in REMOTE_TRANSFER_ACTIONS:
            if not self.files_endpoint:
                raise ValueError(f"action {action_type} for {path} needs files_endpoint")
            separator = "&" if "?" in self.files_endpoint else "?"
            action["url"] = f"{self.files_endpoint}{separator}{urlencode({'path': path, 'file_type': path_type})}"
        return action
