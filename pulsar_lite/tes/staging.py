"""A TES task's inputs and outputs: http(s) through the libcurl transfer engine (retries, resume), file://
only under the configured roots (``tes_file_roots``, none by default), and inline ``content``.

Inputs land on the host mirror of their container path (``<job>/tes/root/<path>``) before the job is
queued; outputs are taken from there after the executors ended, wildcards matched under the mirror and
``path_prefix`` removed from the URL's tail. What was sent is recorded in ``<job>/tes/outputs.json``,
which becomes the task log's ``outputs``.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import urllib.parse
from contextlib import contextmanager
from typing import Iterator

from .. import fsutil
from ..staging import RetryPolicy, transfer
from ..staging.actions import PermanentStagingError
from .runtime import host_path

OUTPUTS_LOG = "outputs.json"


def _local(url: str, roots: list[str], what: str) -> str:
    """The local path of a file:// URL (or a bare absolute path), refused unless under an allowed root."""
    parsed = urllib.parse.urlparse(url)
    path = urllib.parse.unquote(parsed.path if parsed.scheme == "file" else url)
    if parsed.scheme == "file" and parsed.netloc not in ("", "localhost"):
        raise PermanentStagingError(f"{what}: file URLs of other hosts are not supported ({url})")
    real = os.path.realpath(path)
    for root in roots:
        base = os.path.realpath(root)
        if real == base or real.startswith(base.rstrip("/") + "/"):
            return real
    raise PermanentStagingError(f"{what}: {url} is not under an allowed local root (tes_file_roots)")


def _scheme(url: str) -> str:
    return urllib.parse.urlparse(url).scheme.lower() if "://" in url else ("file" if url.startswith("/") else "")


def stage_in(task: dict, job_directory: str, roots: list[str], policy: RetryPolicy) -> tuple[int, int]:
    """Every input onto its host mirror; (files, bytes). Raises with a one-line reason."""
    root = os.path.join(job_directory, "tes", "root")
    files = size = 0
    for n, entry in enumerate(task["inputs"]):
        target = host_path(root, entry["path"])
        what = f"input {entry['name'] or n} ({entry['path']})"
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if entry["content"] is not None:
            size += fsutil.write_bytes(target, entry["content"].encode("utf-8"), mode=0o644, durable=True)
        elif _scheme(entry["url"]) in ("http", "https"):
            if entry["type"] == "DIRECTORY":
                raise PermanentStagingError(f"{what}: DIRECTORY inputs by http(s) are not supported")
            stats = transfer.download(entry["url"], target, retry=policy, root=job_directory)
            size += stats.bytes
        elif _scheme(entry["url"]) == "file":
            source = _local(entry["url"], roots, what)
            if entry["type"] == "DIRECTORY":
                shutil.copytree(source, target, dirs_exist_ok=True)
                size += sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(target) for f in fs)
            else:
                size += fsutil.copy_file(source, target, durable=True)
        else:
            raise PermanentStagingError(f"{what}: unsupported URL {entry['url']!r} (http, https and file are)")
        if entry["type"] == "FILE":
            os.chmod(target, 0o644)
        files += 1
    return files, size


def _matches(entry: dict, root: str) -> list[tuple[str, str]]:
    """(host file, URL) pairs an output sends."""
    url = entry["url"].rstrip("/")
    source = host_path(root, entry["path"])
    if entry["path_prefix"]:  # wildcards: every match, its URL the output's URL + the match less the prefix
        prefix = host_path(root, entry["path_prefix"]).rstrip("/") + "/"
        return [(match, f"{url}/{match[len(prefix):]}") for match in sorted(glob.glob(source))
                if os.path.isfile(match) and match.startswith(prefix)]
    if entry["type"] == "DIRECTORY":
        return [(os.path.join(directory, name), f"{url}/{os.path.relpath(os.path.join(directory, name), source)}")
                for directory, _, names in sorted(os.walk(source)) for name in sorted(names)]
    return [(source, entry["url"])]


def stage_out(task: dict, job_directory: str, roots: list[str], policy: RetryPolicy) -> tuple[int, int]:
    """Every output to its URL; writes the output file log; (files, bytes). Raises with a one-line reason
    naming every output that could not be sent."""
    root = os.path.join(job_directory, "tes", "root")
    sent, errors = [], []
    for n, entry in enumerate(task["outputs"]):
        what = f"output {entry['name'] or n} ({entry['path']})"
        pairs = _matches(entry, root)
        if not pairs and not entry["path_prefix"]:
            errors.append(f"{what}: the executors did not create it")
            continue
        for path, url in pairs:
            try:
                with _opened(job_directory, path) as source:
                    size = os.path.getsize(source)
                    scheme = _scheme(url)
                    if scheme in ("http", "https"):
                        transfer.put(url, source, retry=policy)
                    elif scheme == "file":
                        target = _local(url, roots, what)
                        os.makedirs(os.path.dirname(target), exist_ok=True)
                        fsutil.copy_file(source, target, durable=True)
                    else:
                        raise PermanentStagingError(f"unsupported URL {url!r} (http, https and file are)")
                container_path = "/" + os.path.relpath(path, root)
                sent.append({"url": url, "path": container_path, "size_bytes": str(size)})
            except Exception as exc:
                errors.append(f"{what}: {exc}")
    fsutil.write_bytes(os.path.join(job_directory, "tes", OUTPUTS_LOG), json.dumps(sent).encode(), mode=0o644)
    if errors:
        raise PermanentStagingError("; ".join(errors[:5]) + (f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""))
    return len(sent), sum(int(s["size_bytes"]) for s in sent)


@contextmanager
def _opened(job_directory: str, path: str) -> Iterator[str]:
    """An output opened below the job directory (the executors may have made it a symlink, which is
    followed only while it stays inside), as a name that reaches the opened file (fsutil.opened_below)."""
    try:
        with fsutil.opened_below(job_directory, path) as source:
            yield source
    except FileNotFoundError:
        raise PermanentStagingError("the executors did not create it") from None


def sent_outputs(job_directory: str) -> list[dict]:
    data = fsutil.read_bytes(os.path.join("tes", OUTPUTS_LOG), root=job_directory)
    try:
        return json.loads(data) if data is not None else []
    except ValueError:
        return []
