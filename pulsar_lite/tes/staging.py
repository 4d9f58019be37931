"""A TES task's inputs and outputs: http(s) and ftp(s) through the libcurl transfer engine (retries, resume;
every address connected to checked against ``tes_fetch_allowed_networks`` / ``tes_fetch_denied_networks``:
``remote``), file:// only under the configured roots (``tes_file_roots``, none by default), and inline
``content``. A URL's credentials (``ftp://user:password@host/``) are used, never shown: every message and the
output file log name the URL with its password masked (``public_url``).

Inputs land on the host mirror of their container path (``<job>/tes/root/<path>``) before the job is
queued; outputs are taken from there after the executors ended, wildcards matched under the mirror and
``path_prefix`` removed from the URL's tail. What was sent is recorded in ``<job>/tes/outputs.json``,
which becomes the task log's ``outputs``.
"""
from __future__ import annotations

import fnmatch
import json
import os
import posixpath
import shutil
import urllib.parse
from contextlib import ExitStack, contextmanager
from typing import Iterator

from .. import fsutil
from ..staging import RetryPolicy, ftp, transfer
from ..staging.actions import PermanentStagingError
from .runtime import has_wildcards, host_path

OUTPUTS_LOG = "outputs.json"
#: lines for the task's system_logs about its outputs (those not sent after an executor failed)
OUTPUT_NOTES = "outputs.notes"
REMOTE_SCHEMES = ("http", "https", "ftp", "ftps")


def public_url(url: str | None) -> str | None:
    """``url`` with the password of its user information masked (``user:***@``; a user name alone, often a
    token, is masked whole: ``***@``) and the credentials of its query (``X-Amz-Signature``, ``sig``, ...);
    the rest as it is."""
    if not url:
        return url
    if "?" in url:  # a pre-signed URL's signature is a credential too
        from ..staging.transfer import mask_query

        url = mask_query(url)
    if "@" not in url:
        return url
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)
    masked = userinfo.split(":", 1)[0] + ":***" if ":" in userinfo else "***"
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{masked}@{host}"))


def _local(url: str, roots: list[str], what: str) -> str:
    """The local path of a file:// URL (or a bare absolute path), refused unless under an allowed root."""
    parsed = urllib.parse.urlparse(url)
    path = urllib.parse.unquote(parsed.path if parsed.scheme == "file" else url)
    if parsed.scheme == "file" and parsed.netloc not in ("", "localhost"):
        raise PermanentStagingError(f"{what}: file URLs of other hosts are not supported ({public_url(url)})")
    real = os.path.realpath(path)
    for root in roots:
        base = os.path.realpath(root)
        if real == base or real.startswith(base.rstrip("/") + "/"):
            return real
    raise PermanentStagingError(f"{what}: {public_url(url)} is not under an allowed local root (tes_file_roots)")


def scheme(url: str) -> str:
    return urllib.parse.urlparse(url).scheme.lower() if "://" in url else ("file" if url.startswith("/") else "")


def stage_in(task: dict, job_directory: str, roots: list[str], policy: RetryPolicy, remote=None) -> tuple[int, int]:
    """Every input onto its host mirror; (files, bytes). Raises with a one-line reason. ``remote``
    (staging.remote.Remote): the address rule, CA and FTP TLS of http(s) and ftp(s) transfers."""
    root = os.path.join(job_directory, "tes", "root")
    files = size = 0
    for n, entry in enumerate(task["inputs"]):
        target = host_path(root, entry["path"])
        what = f"input {entry['name'] or n} ({entry['path']})"
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if entry["content"] is not None:
            size += fsutil.write_bytes(target, entry["content"].encode("utf-8"), mode=0o644, durable=True)
        elif scheme(entry["url"]) in ("http", "https"):
            if entry["type"] == "DIRECTORY":
                raise PermanentStagingError(f"{what}: DIRECTORY inputs by http(s) are not supported")
            stats = transfer.download(entry["url"], target, retry=policy, root=job_directory, remote=remote)
            size += stats.bytes
        elif scheme(entry["url"]) in ("ftp", "ftps"):
            if entry["type"] == "DIRECTORY":
                size += ftp.download_tree(entry["url"], target, retry=policy, root=job_directory, remote=remote)[1]
                _readable(target)
            else:
                ftp.download(entry["url"], target, retry=policy, root=job_directory, remote=remote)
                size += os.path.getsize(target)
        elif scheme(entry["url"]) == "file":
            source = _local(entry["url"], roots, what)
            if entry["type"] == "DIRECTORY":
                shutil.copytree(source, target, dirs_exist_ok=True)
                size += sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(target) for f in fs)
            else:
                size += fsutil.copy_file(source, target, durable=True)
        else:
            raise PermanentStagingError(f"{what}: unsupported URL {public_url(entry['url'])!r} (http, https, ftp, "
                                        f"ftps and file are)")
        if entry["type"] == "FILE":
            os.chmod(target, 0o644)
        files += 1
    return files, size


class NotCreated(PermanentStagingError):
    """An output the executors did not create (a FILE that is not there, a DIRECTORY that is not there)."""

    def __init__(self):
        super().__init__("the executors did not create it")


def _readable(top: str) -> None:
    """A directory input the daemon made: readable by the executors' user whatever the daemon's umask (a
    FILE input is made 0644 the same way)."""
    for directory, _, names in os.walk(top):
        os.chmod(directory, 0o755)
        for name in names:
            os.chmod(os.path.join(directory, name), 0o644)


def _matches(entry: dict, root: str) -> list[tuple[str, str]]:
    """(host file, URL) pairs an output sends. Found without following a symlink out of the mirror ``root``:
    a wildcard's walk and a DIRECTORY's never enter a symlinked directory, and a DIRECTORY output that is itself
    a symlink is followed only while it stays in the mirror (else PathEscapes, which names no file of the host).
    A wildcard match that is a directory is sent as a DIRECTORY output is: every file below it. NotCreated for a
    DIRECTORY output that is not there (an empty one sends nothing, as a wildcard matching nothing)."""
    url = entry["url"].rstrip("/")
    source = host_path(root, entry["path"])
    if entry["path_prefix"]:  # wildcards: every match, its URL the output's URL + the match less the prefix
        prefix = host_path(root, entry["path_prefix"]).rstrip("/") + "/"
        pairs = []
        for match, is_directory in sorted(_glob(root, entry["path"])):
            match = os.path.join(root, match)
            if not match.startswith(prefix):
                continue
            if not is_directory:
                pairs.append((match, f"{url}/{_quoted(match[len(prefix):])}"))
                continue
            try:
                pairs += [(path, f"{url}/{_quoted(path[len(prefix):])}") for path in _walk(match, root)]
            except (FileNotFoundError, NotADirectoryError):
                continue  # gone since the glob saw it (nothing of the task runs now: not expected)
        return pairs
    if entry["type"] == "DIRECTORY":
        try:
            found = _walk(source, root)
        except (FileNotFoundError, NotADirectoryError):
            raise NotCreated() from None
        return [(path, f"{url}/{_quoted(os.path.relpath(path, source))}") for path in found]
    return [(source, entry["url"])]


def _walk(directory: str, root: str) -> list[str]:
    """Every file below ``directory`` (sorted), walked with ``fwalk`` from a descriptor opened below the mirror
    ``root`` (``fsutil.open_directory``: PathEscapes when the directory leads out of it): a symlinked directory in
    it is not entered; a symlink to a file is listed (and refused when opened if it leads out)."""
    top = fsutil.open_directory(directory, root)
    try:
        return sorted(os.path.normpath(os.path.join(directory, sub, name))
                      for sub, _, names, _ in os.fwalk(".", dir_fd=top) for name in names)
    finally:
        os.close(top)


def _quoted(relative: str) -> str:
    """A relative path appended to an output's URL, percent-encoded (a space, '#', '?' or '%' in a file name)."""
    return urllib.parse.quote(relative, safe="/")


def _glob(root: str, pattern: str) -> list[tuple[str, bool]]:
    """(path relative to ``root``, whether it is a directory) of each match of ``pattern`` (a container path
    with wildcards), as glob finds them (a wildcard matches no leading '.'), but component by component from
    descriptors opened with O_NOFOLLOW: a symlinked directory on the way is not entered. A match that is a
    directory (not a symlink) is kept, to be walked; one that is a symlink is kept unless it leads to
    something other than a regular file inside the mirror; one leading out is kept, and refused when it is
    opened."""
    found = [""]
    matches: list[tuple[str, bool]] = []
    parts = [part for part in pattern.split("/") if part]
    for n, part in enumerate(parts):
        last = n == len(parts) - 1
        below = []
        for base in found:
            try:  # (its components are directories, none a symlink: this walk found them)
                fd = fsutil.open_below(root, base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except (OSError, fsutil.PathEscapes):
                continue
            try:
                entries = [entry for entry in os.scandir(fd) if _fits(entry.name, part)]
                for entry in entries:
                    path = f"{base}/{entry.name}" if base else entry.name
                    if not last:
                        if entry.is_dir(follow_symlinks=False):
                            below.append(path)
                    elif entry.is_dir(follow_symlinks=False):
                        matches.append((path, True))
                    elif entry.is_file(follow_symlinks=False) or (entry.is_symlink() and _regular(root, path)):
                        matches.append((path, False))
            finally:
                os.close(fd)
        found = below
    return matches


def _fits(name: str, part: str) -> bool:
    if not has_wildcards(part):
        return name == part
    return (not name.startswith(".") or part.startswith(".")) and fnmatch.fnmatchcase(name, part)


def _regular(root: str, path: str) -> bool:
    """A symlink a wildcard matched: kept when it leads out of the mirror (refused when it is opened, with the
    reason), or to a regular file inside it."""
    try:
        opened = fsutil.open_regular(path, root)
    except fsutil.PathEscapes:
        return True
    if opened is None:
        return False
    os.close(opened[0])
    return True


def stage_out(task: dict, job_directory: str, roots: list[str], policy: RetryPolicy, remote=None,
              executor_failed: bool = False) -> tuple[int, int]:
    """Every output that exists to its URL (``remote``: how the daemon's transfers reach it, its address
    rule); writes the output file log and the notes for the task's ``system_logs`` (URLs in both with their
    password masked: ``public_url``); (files, bytes).

    After the executors succeeded, an output that could not be sent fails the task (raises with a one-line
    reason naming each), a FILE or DIRECTORY output the executors did not create included; an empty DIRECTORY
    and a wildcard matching nothing send nothing and are fine. After an executor failed (``executor_failed``)
    whatever exists is sent all the same (the client wants the logs of what failed), and nothing raises: the
    outputs that were not there are one line of the notes, each output that could not be sent another."""
    root = os.path.join(job_directory, "tes", "root")
    sent, missing, errors = [], [], []
    for n, entry in enumerate(task["outputs"]):
        what = f"output {entry['name'] or n} ({entry['path']})"
        try:
            pairs = _matches(entry, root)
        except NotCreated:
            missing.append(what)
            continue
        except fsutil.PathEscapes as exc:
            errors.append(f"{what}: {exc}")
            continue
        placeholder = posixpath.dirname(entry["path"]) == "/" and not entry["path_prefix"]  # runtime.root_files
        for path, url in pairs:
            try:
                with _opened(root, path, placeholder) as source:
                    size = os.path.getsize(source)
                    kind = scheme(url)
                    if kind in ("http", "https"):
                        transfer.put(url, source, retry=policy, remote=remote)
                    elif kind in ("ftp", "ftps"):
                        ftp.upload(url, source, retry=policy, remote=remote)
                    elif kind == "file":
                        target = _local(url, roots, what)
                        os.makedirs(os.path.dirname(target), exist_ok=True)
                        fsutil.copy_file(source, target, durable=True)
                    else:
                        raise PermanentStagingError(f"unsupported URL {public_url(url)!r} (http, https, ftp, ftps "
                                                    f"and file are)")
                container_path = "/" + os.path.relpath(path, root)
                sent.append({"url": public_url(url), "path": container_path, "size_bytes": str(size)})
            except NotCreated:
                missing.append(what)
            except Exception as exc:
                errors.append(f"{what}: {exc}")
    tes = os.path.join(job_directory, "tes")
    fsutil.write_bytes(os.path.join(tes, OUTPUTS_LOG), json.dumps(sent).encode(), mode=0o644)
    notes = []
    if executor_failed:
        if missing:
            notes.append(f"outputs not sent, the executors did not create them: {', '.join(missing)}")
        notes += [f"{line} (not sent)" for line in errors]
    fsutil.write_bytes(os.path.join(tes, OUTPUT_NOTES), "".join(f"{line}\n" for line in notes).encode(), mode=0o644)
    if not executor_failed:
        errors = [f"{what}: the executors did not create it" for what in missing] + errors
        if errors:
            raise PermanentStagingError("; ".join(errors[:5]) + (f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""))
    return len(sent), sum(int(s["size_bytes"]) for s in sent)


@contextmanager
def _opened(root: str, path: str, placeholder: bool = False) -> Iterator[str]:
    """An output opened below the task's mirror ``root`` (the executors may have made it a symlink, which is
    followed only while it stays inside), as a name that reaches the opened file (fsutil.opened_below).
    NotCreated when it is not there, or (``placeholder``: a file mounted directly under ``/``) when it is still
    the empty file dated 1970 the job script made for the mount (no executor wrote it)."""
    with ExitStack() as stack:
        try:
            source = stack.enter_context(fsutil.opened_below(root, path))
        except FileNotFoundError as exc:
            if exc.strerror == "not a regular file":
                raise PermanentStagingError("it is not a regular file") from None
            raise NotCreated() from None
        if placeholder:
            info = os.stat(source)
            if info.st_size == 0 and info.st_mtime_ns == 0:
                raise NotCreated()
        yield source


def sent_outputs(job_directory: str) -> list[dict]:
    data = fsutil.read_bytes(os.path.join("tes", OUTPUTS_LOG), root=job_directory)
    try:
        return json.loads(data) if data is not None else []
    except ValueError:
        return []


def output_notes(job_directory: str) -> list[str]:
    """The lines ``stage_out`` left for the task's ``system_logs`` (read below the job directory)."""
    data = fsutil.read_bytes(os.path.join("tes", OUTPUT_NOTES), limit=16 * 1024, root=job_directory)
    return [line for line in data.decode(errors="replace").splitlines() if line] if data else []
