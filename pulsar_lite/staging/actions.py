"""What each staging action does on the server: bring an input in, send an output out.

Every write into the job directory goes to a temporary file first and is
renamed into place, so an interrupted transfer never leaves a half file
where a job would read it.
"""
from __future__ import annotations

import os

from .. import fsutil
from ..errors import NotSupported
from .mapper import LOCAL_ACTIONS, NO_STAGING_ACTIONS, REMOTE_TRANSFER_ACTIONS, SSH_ACTIONS


class PermanentStagingError(Exception):
    """Retrying cannot help (missing source, 4xx, unsupported action)."""


def _source_path(action: dict) -> str:
    source = action.get("source") or {}
    path = source.get("path") or action.get("path")
    if not path:
        raise PermanentStagingError(f"action {action.get('action_type')} has no source path")
    return path


def _atomic_copy(source: str, target: str, durable: bool = False) -> int:
    os.makedirs(os.path.dirname(target), exist_ok=True)
    return fsutil.copy_file(source, target, durable=durable)


def stage_in(action: dict, target: str, policy, root: str | None = None) -> int:
    """Materialise an input at ``target``; returns bytes written. ``root``: the job directory, below which a
    download's directory is opened (a symlink the job planted on the way is never followed out of it)."""
    action_type = action.get("action_type")
    if action_type in REMOTE_TRANSFER_ACTIONS | {"remote_copy"} and os.path.isfile(target) \
            and not os.path.islink(target):
        # complete files are only ever renamed into place: this one was staged before a restart
        return 0
    if action_type in SSH_ACTIONS:
        if os.path.isfile(target) and not os.path.islink(target):
            return 0  # complete files are only ever renamed into place: staged before a restart
        from . import ssh_copy

        return policy.run(ssh_copy.fetch, action, target, describe=f"staging {target}")
    if action_type in REMOTE_TRANSFER_ACTIONS:
        url = action.get("url")
        if not url:
            raise PermanentStagingError(f"{action_type} action for {action.get('path')} has no url")
        from . import transfer

        return transfer.download(url, target, retry=policy, expected_sha256=_sha256(action), root=root).bytes
    return policy.run(_stage_in_local, action, target, describe=f"staging {target}")


def _sha256(action: dict) -> str | None:
    source = action.get("source") or {}
    for holder in (action, source):
        for key in ("sha256", "hash_value"):
            value = holder.get(key)
            if value and (holder.get("hash_function", "sha256").lower() == "sha256"):
                return str(value)
    return None


def _stage_in_local(action: dict, target: str) -> int:
    action_type = action.get("action_type")
    if action_type in NO_STAGING_ACTIONS or action_type in LOCAL_ACTIONS:
        return 0
    if action_type == "message":
        contents = action.get("contents")
        if contents is None:
            raise PermanentStagingError("message action without contents")
        # inputs are on disk before the job may read them (and before preprocessing's commit says they
        # are staged), as pulled ones are
        return fsutil.write_bytes(target, contents.encode("utf-8") if isinstance(contents, str) else bytes(contents),
                                  durable=True)
    if action_type == "remote_copy":
        source = _source_path(action)
        if not os.path.isfile(source):
            raise PermanentStagingError(f"remote_copy source {source} does not exist or is not a file")
        return _atomic_copy(source, target, durable=True)
    raise NotSupported(f"staging action {action_type!r} is not supported by this pulsar_lite version")


def stage_out(action: dict, source: str, policy, name: str | None = None, root: str | None = None) -> int:
    """Send the server file ``source`` where the action says; returns bytes sent. ``name``: the file's own
    name when ``source`` is another one for it (fsutil.opened_below's ``/proc/self/fd/N``); ``root``: the job
    directory, below which a TUS upload keeps its resume state."""
    action_type = action.get("action_type")
    if action_type in NO_STAGING_ACTIONS or action_type in LOCAL_ACTIONS:
        return 0
    if not os.path.isfile(source):
        raise PermanentStagingError(f"output {source} does not exist")
    if action_type == "remote_transfer":
        from . import transfer

        return transfer.upload(action["url"], source, retry=policy, name=name).bytes
    if action_type == "remote_transfer_tus":
        from . import tus

        return tus.upload_tus(action["url"], source, retry=policy, name=name, root=root).bytes
    if action_type == "remote_copy":
        return policy.run(_atomic_copy, source, _source_path(action), describe=f"staging out {source}")
    if action_type in SSH_ACTIONS:
        from . import ssh_copy

        return policy.run(ssh_copy.send, action, source, describe=f"staging out {name or source}")
    raise NotSupported(f"staging action {action_type!r} is not supported for outputs by this pulsar_lite version")
