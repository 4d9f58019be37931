"""Resumable uploads through Galaxy's TUS endpoint (the ``remote_transfer_tus`` staging action), on libcurl.

The file goes up in chunks (``PULSAR_TUS_CHUNK_SIZE`` bytes, Pulsar's variable) to
``job_files/resumable_upload``, then a POST of the upload's ``session_id`` to the job-files URL registers
it. Retries, backoff and error messages are the transfer engine's (``transfer.py``).
"""
from __future__ import annotations

import base64
import errno
import logging
import os
import re
import stat
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

from .. import fsutil
from .transfer import TransferStats, _curl, _fail, _need_pycurl, _Response, _retrying, pycurl

log = logging.getLogger(__name__)

TUS_CHUNK_SIZE = int(os.environ.get("PULSAR_TUS_CHUNK_SIZE", 10 ** 7))


def tus_endpoint(url: str) -> str:
    """Galaxy's TUS endpoint for a job-files URL: ``jobs/<id>/files`` -> ``job_files/resumable_upload``."""
    parts = urlsplit(url)
    path = re.sub(r"jobs/[^/]*/files", "job_files/resumable_upload", parts.path, count=1)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def _request(method: str, url: str, headers: dict[str, str], *, body_path: str | None = None, offset: int = 0,
             length: int = 0, form: dict | None = None, timeout: float = 30, low_speed_time: float = 60):
    """One HTTP request with libcurl: (status, response headers). Transport failures raise TransferError."""
    response = _Response()
    curl = _curl(url, timeout, low_speed_time)
    curl.setopt(pycurl.HTTPHEADER, [f"{k}: {v}" for k, v in headers.items()])
    curl.setopt(pycurl.HEADERFUNCTION, response.header_line)
    curl.setopt(pycurl.WRITEFUNCTION, lambda chunk: None)
    handle = None
    if method == "HEAD":
        curl.setopt(pycurl.NOBODY, 1)
    elif body_path is not None:
        handle = open(body_path, "rb")
        handle.seek(offset)
        remaining = [length]

        def read(size):
            data = handle.read(min(size, remaining[0]))
            remaining[0] -= len(data)
            return data

        curl.setopt(pycurl.UPLOAD, 1)
        curl.setopt(pycurl.READFUNCTION, read)
        curl.setopt(pycurl.INFILESIZE_LARGE, length)
        curl.setopt(pycurl.CUSTOMREQUEST, method)
    elif form is not None:
        curl.setopt(pycurl.POSTFIELDS, urlencode(form))
    else:
        curl.setopt(pycurl.POSTFIELDS, "")
        curl.setopt(pycurl.CUSTOMREQUEST, method)
    try:
        curl.perform()
        return curl.getinfo(pycurl.RESPONSE_CODE), response.headers
    except pycurl.error as exc:
        code, message = exc.args[0], exc.args[1] if len(exc.args) > 1 else ""
        raise _fail(method, url, None, f"curl error {code}: {message}", permanent=False) from None
    finally:
        curl.close()
        if handle is not None:
            handle.close()


def upload_tus(url: str, source: str, *, retry, timeout: float = 30, low_speed_time: float = 60,
               chunk_size: int | None = None, name: str | None = None, root: str | None = None) -> TransferStats:
    """Upload ``source`` through Galaxy's TUS endpoint, then register it with a POST of ``session_id``.

    The upload URL is kept in a hidden file beside ``source`` until the upload is registered,
    so an interrupted upload (a dropped connection, a daemon restart) resumes at the server's offset.
    ``name``: the file's own name (for that hidden file and the upload's metadata) when ``source`` is
    another name for it (``/proc/self/fd/N``). ``root``: the job directory ``name`` is below; the hidden
    file's directory is then opened below it (fsutil.open_directory), not by name.

    The job owns that directory: the hidden file is read, replaced and removed relative to the directory's
    descriptor and never through a symlink (one there is no resume state, and is replaced by the new one),
    so a job cannot have the daemon write the upload URL into, or read it from, a file elsewhere.
    """
    if not os.path.isfile(source):
        raise _fail("POST", url, None, f"local file {source} does not exist", permanent=True)
    _need_pycurl("POST", url)
    chunk = chunk_size or TUS_CHUNK_SIZE
    name = name or source
    state = f".{os.path.basename(name)}.tus"
    shown_state = os.path.join(os.path.dirname(name), state)
    endpoint = tus_endpoint(url)
    size = os.path.getsize(source)
    tus = {"Tus-Resumable": "1.0.0"}
    resumed = [0]
    try:
        directory = fsutil.open_directory(os.path.dirname(name) or ".", root)
    except (OSError, fsutil.PathEscapes) as exc:
        raise _fail("POST", url, None, f"cannot keep the resume state {shown_state}: {exc}", permanent=True) from None

    def attempt() -> TransferStats:
        location = _read_state(directory, state, shown_state)
        offset = 0
        if location:
            status, headers = _request("HEAD", location, tus, timeout=timeout, low_speed_time=low_speed_time)
            if status in (404, 410):
                location = None
            elif status >= 300 or "upload-offset" not in headers:
                raise _fail("HEAD", location, status, "cannot resume the TUS upload")
            else:
                offset = resumed[0] = int(headers["upload-offset"])
        if not location:
            encoded = base64.b64encode(os.path.basename(name).encode()).decode()
            status, headers = _request("POST", endpoint, {**tus, "Upload-Length": str(size),
                                                          "Upload-Metadata": f"filename {encoded}"},
                                       timeout=timeout, low_speed_time=low_speed_time)
            if status != 201 or "location" not in headers:
                raise _fail("POST", endpoint, status, "TUS upload not created")
            location = urljoin(endpoint, headers["location"])
            fsutil.write_bytes_at(directory, state, location.encode())
        while offset < size:
            length = min(chunk, size - offset)
            status, headers = _request("PATCH", location, {**tus, "Upload-Offset": str(offset),
                                                           "Content-Type": "application/offset+octet-stream"},
                                       body_path=source, offset=offset, length=length, timeout=timeout,
                                       low_speed_time=low_speed_time)
            if status != 204:
                raise _fail("PATCH", location, status, "TUS chunk refused")
            offset = int(headers.get("upload-offset", offset + length))
        session_id = location.rstrip("/").rsplit("/", 1)[1]
        status, _ = _request("POST", url, {}, form={"session_id": session_id}, timeout=timeout,
                             low_speed_time=low_speed_time)
        if not 200 <= status < 300:
            raise _fail("POST", url, status, "registering the TUS upload failed")
        try:
            os.unlink(state, dir_fd=directory)  # unlink never follows a symlink: it removes the name
        except FileNotFoundError:
            pass
        return TransferStats(bytes=size - resumed[0], resumed_from=resumed[0])

    try:
        return _retrying(attempt, url, retry, "upload")
    finally:
        os.close(directory)


#: more than any upload URL: a resume state file larger than this is not one this module wrote
_STATE_LIMIT = 64 * 1024


def _read_state(directory: int, state: str, shown: str) -> str | None:
    """The upload URL kept in ``state`` (in the directory open at ``directory``); None when there is none.
    Opened with O_NOFOLLOW: a symlink (or anything but a regular file) there was not written by this module
    (it renames a regular file into place) and is no resume state."""
    try:
        fd = os.open(state, fsutil.READ_FLAGS | os.O_NOFOLLOW, dir_fd=directory)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        log.warning("%s is a symbolic link, not a resume state: not followed; the upload starts anew", shown)
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            log.warning("%s is not a regular file: no resume state; the upload starts anew", shown)
            return None
        return fsutil.pread_exactly(fd, _STATE_LIMIT).decode("utf-8", "replace").strip() or None
    finally:
        os.close(fd)
