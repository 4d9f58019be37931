"""Resumable uploads through Galaxy's TUS endpoint (the ``remote_transfer_tus`` staging action), on libcurl.

The file goes up in chunks (``PULSAR_TUS_CHUNK_SIZE`` bytes, Pulsar's variable) to
``job_files/resumable_upload``, then a POST of the upload's ``session_id`` to the job-files URL registers
it. Retries, backoff and error messages are the transfer engine's (``transfer.py``).
"""
from __future__ import annotations

import base64
import os
import re
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

from .transfer import TransferStats, _curl, _fail, _need_pycurl, _Response, _retrying, pycurl

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
               chunk_size: int | None = None, name: str | None = None) -> TransferStats:
    """Upload ``source`` through Galaxy's TUS endpoint, then register it with a POST of ``session_id``.

    The upload URL is kept in a hidden file beside ``source`` until the upload is registered,
    so an interrupted upload (a dropped connection, a daemon restart) resumes at the server's offset.
    ``name``: the file's own name (for that hidden file and the upload's metadata) when ``source`` is
    another name for it (``/proc/self/fd/N``).
    """
    if not os.path.isfile(source):
        raise _fail("POST", url, None, f"local file {source} does not exist", permanent=True)
    _need_pycurl("POST", url)
    chunk = chunk_size or TUS_CHUNK_SIZE
    name = name or source
    state = os.path.join(os.path.dirname(name), f".{os.path.basename(name)}.tus")
    endpoint = tus_endpoint(url)
    size = os.path.getsize(source)
    tus = {"Tus-Resumable": "1.0.0"}
    resumed = [0]

    def attempt() -> TransferStats:
        location = open(state).read().strip() if os.path.exists(state) else None
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
            with open(state, "w") as handle:
                handle.write(location)
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
        os.unlink(state)
        return TransferStats(bytes=size - resumed[0], resumed_from=resumed[0])

    return _retrying(attempt, url, retry, "upload")


