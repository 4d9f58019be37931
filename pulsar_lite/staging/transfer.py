"""HTTP transfers for pull staging (Galaxy's job-files API), on libcurl.

``download`` streams to ``<target>.part`` and renames when complete and
verified; an interrupted download (a dropped connection, a daemon restart)
resumes from the bytes already on disk with a byte range. ``upload`` POSTs the
file as multipart field ``file``, streamed from disk (TUS uploads: ``tus.py``). Transient failures
(connection errors, timeouts, 408/425/429/5xx) are retried with backoff;
permanent ones (other 4xx, missing local files, local I/O errors) fail at once
with one line naming the HTTP status and the URL, secrets redacted.

Every handle speaks http, https, ftp and ftps only, and follows redirects to http(s) only. A URL a client
named (TES: ``put`` and ``download`` with ``remote``, remote.Remote) has every address libcurl connects to
checked (pulsar_lite.netpolicy); a refused one fails the transfer at once. FTP: ``ftp.py``.
"""
from __future__ import annotations

import logging
import os
import ssl
import re
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .. import fsutil, netpolicy
from .partial import open_part as _open_part
from .partial import sha256 as _sha256

try:
    import pycurl
except ImportError:  # pragma: no cover - exercised only where pycurl is missing
    pycurl = None

log = logging.getLogger(__name__)

#: query parameters that are credentials (Galaxy's job key; pre-signed URLs' signatures: S3, GCS, Azure SAS)
SECRET_PARAMS = {"job_key", "private_token", "token", "api_key", "key", "x-amz-signature", "x-amz-credential",
                 "x-amz-security-token", "x-goog-signature", "x-goog-credential", "sig", "signature"}
TRANSIENT_STATUS = {408, 425, 429}
_sleep = time.sleep


class TransferError(Exception):
    def __init__(self, message: str, status: int | None = None, url: str = "", permanent: bool = False):
        super().__init__(message)
        self.status = status
        self.url = url
        self.permanent = permanent


@dataclass
class TransferStats:
    bytes: int = 0
    seconds: float = 0.0
    resumed_from: int = 0
    attempts: int = 0


def redact(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        netloc = (userinfo.split(":", 1)[0] + ":***@" if ":" in userinfo else "***@") + host
    query = _masked(parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask_query(url: str) -> str:
    """``url`` with the values of its credential query parameters (SECRET_PARAMS) as ``***``."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not any(k.lower() in SECRET_PARAMS for k, _ in pairs):
        return url
    return urlunsplit((parts.scheme, parts.netloc, parts.path, _masked(pairs), parts.fragment))


def _masked(pairs: list[tuple[str, str]]) -> str:
    """A query string of ``pairs``, the values of credential parameters (SECRET_PARAMS) as ``***``."""
    return urlencode([(k, "***" if k.lower() in SECRET_PARAMS else v) for k, v in pairs], safe="*/")


def _transient(status: int | None) -> bool:
    return status is None or status in TRANSIENT_STATUS or status >= 500


#: the calling thread's "stop now" event (the retry policy's ``stopping``): a transfer in flight when the
#: daemon stops is aborted within a second, its partial file kept for the resume at the next start
_ABORT = threading.local()


def _retrying(action, url: str, retry, what: str) -> TransferStats:
    attempt = 0
    started = time.monotonic()
    stopping = getattr(retry, "stopping", None)
    _ABORT.event = stopping
    try:
        while True:
            attempt += 1
            try:
                stats = action()
                stats.attempts = attempt
                stats.seconds = time.monotonic() - started
                return stats
            except TransferError as exc:
                if stopping is not None and stopping.is_set():
                    raise TransferError(f"{what} of {redact(url)} stopped: the daemon is stopping", url=url,
                                        permanent=True) from None
                max_retries = getattr(retry, "max_retries", -1)
                exhausted = max_retries < 0 or (max_retries > 0 and attempt > max_retries)
                if exc.permanent or exhausted:
                    raise
                delay = min(retry.interval_start + retry.interval_step * (attempt - 1), retry.interval_max)
                log.warning("%s (attempt %d); retrying in %.1fs", exc, attempt, delay)
                on_retry = getattr(retry, "on_retry", None)
                if on_retry is not None:
                    on_retry()
                _sleep(delay)
    finally:
        _ABORT.event = None


class _Response:
    def __init__(self):
        self.status: int | None = None
        self.body_started = False
        self.reason = ""
        self.headers: dict[str, str] = {}

    def header_line(self, line: bytes) -> None:
        text = line.decode("iso-8859-1").strip()
        if text.startswith("HTTP/"):
            self.headers = {}  # a new response (redirect, 100-continue)
            pieces = text.split(" ", 2)
            self.status = int(pieces[1]) if len(pieces) > 1 and pieces[1].isdigit() else None
            self.body_started = False
            self.reason = pieces[2] if len(pieces) > 2 else ""
        elif ":" in text:
            name, value = text.split(":", 1)
            self.headers[name.strip().lower()] = value.strip()


#: libcurl's receive buffer: each write callback (a Python call and a write(2)) gets up to this much,
#: not 16 KiB (libcurl's default); libcurl accepts up to 10 MiB
RECEIVE_BUFFER = 1024 * 1024
#: libcurl's send buffer for uploads it reads from the file itself (its maximum is 2 MiB)
SEND_BUFFER = 2 * 1024 * 1024


def _system_ca() -> str | None:
    """The CA bundle TLS servers are checked against: ``CURL_CA_BUNDLE`` or ``SSL_CERT_FILE`` when set, else this
    host's (OpenSSL's default: Debian's /etc/ssl/certs/ca-certificates.crt). The pycurl wheel's own libcurl
    looks for Red Hat's /etc/pki/tls/certs/ca-bundle.crt, absent on Debian: every https transfer, Galaxy's
    job files included, would fail its certificate check there."""
    for name in ("CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        if os.environ.get(name) and os.path.isfile(os.environ[name]):
            return os.environ[name]
    cafile = ssl.get_default_verify_paths().cafile
    return cafile if cafile and os.path.isfile(cafile) else None


SYSTEM_CA = _system_ca()


def _curl(url: str, timeout: float, low_speed_time: float, remote=None):
    """A handle for ``url``: http(s) and ftp(s) only, redirects only to http(s); ``remote``
    (remote.Remote): the address rule, CA and FTP TLS of a client's URL."""
    curl = pycurl.Curl()
    curl.setopt(pycurl.BUFFERSIZE, RECEIVE_BUFFER)
    curl.setopt(pycurl.UPLOAD_BUFFERSIZE, SEND_BUFFER)
    curl.setopt(pycurl.URL, url)
    curl.setopt(pycurl.FOLLOWLOCATION, 1)
    curl.setopt(pycurl.MAXREDIRS, 5)
    curl.setopt(pycurl.CONNECTTIMEOUT, int(timeout))
    curl.setopt(pycurl.LOW_SPEED_LIMIT, 1)
    curl.setopt(pycurl.LOW_SPEED_TIME, max(1, int(low_speed_time)))
    curl.setopt(pycurl.NOSIGNAL, 1)
    curl.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS | pycurl.PROTO_FTP | pycurl.PROTO_FTPS)
    curl.setopt(pycurl.REDIR_PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
    if SYSTEM_CA is not None:
        curl.setopt(pycurl.CAINFO, SYSTEM_CA)
    if remote is not None:
        remote.apply(curl, url, pycurl)
    stopping = getattr(_ABORT, "event", None)
    if stopping is not None:  # libcurl asks about once a second: a non-zero answer aborts the transfer
        curl.setopt(pycurl.NOPROGRESS, 0)
        curl.setopt(pycurl.XFERINFOFUNCTION, lambda *progress: 1 if stopping.is_set() else 0)
    return curl


def _refused(method: str, url: str, curl) -> None:
    """Raise (for good) when the address rule refused a connection of ``curl`` (remote.Remote)."""
    why = netpolicy.refused(curl)
    if why is not None:
        raise _fail(method, url, None, f"refused: {why}", permanent=True) from None


def _fail(method: str, url: str, status: int | None, detail: str, permanent: bool | None = None) -> TransferError:
    shown = redact(url)
    if permanent is None:
        permanent = not _transient(status)
    what = f"HTTP {status} {detail}".strip() if status else detail
    return TransferError(f"{method} {shown} failed: {what}", status=status, url=shown, permanent=permanent)


def _need_pycurl(method: str, url: str) -> None:
    if pycurl is None:  # a dependency; missing only where libcurl's build does not match pycurl's
        raise _fail(method, url, None, "pull staging needs pycurl, which cannot be imported here", permanent=True)


def _content_range_total(headers: dict) -> int | None:
    match = re.match(r"bytes\s+(?:\*|\d+-\d+)/(\d+)", headers.get("content-range", ""))
    return int(match.group(1)) if match else None


def download(url: str, target: str, *, retry, expected_sha256: str | None = None, timeout: float = 30,
             low_speed_time: float = 60, root: str | None = None, remote=None) -> TransferStats:
    """Fetch ``url`` into ``target`` (resuming ``target.part``); returns what it did.

    ``target``'s directory is opened once (below ``root``, the job directory, when given: fsutil.open_directory)
    and ``target.part`` is opened, renamed and removed relative to it, never through a symlink: a symlink
    (or a FIFO, or a second hard link) found at ``target.part`` was not left by a download and is removed,
    and the download starts anew in a file of its own."""
    part = target + ".part"
    _need_pycurl("GET", url)
    try:
        directory = fsutil.open_directory(os.path.dirname(target) or ".", root)
    except (OSError, fsutil.PathEscapes) as exc:
        raise _fail("GET", url, None, f"cannot write {part}: {getattr(exc, 'strerror', None) or exc}",
                    permanent=True) from None
    try:
        return _retrying(lambda: _download_once(url, target, part, expected_sha256, timeout, low_speed_time,
                                                directory, remote), url, retry, "download")
    finally:
        os.close(directory)


def _download_once(url, target, part, expected_sha256, timeout, low_speed_time, directory,
                   remote=None) -> TransferStats:
    try:
        return _download_attempt(url, target, part, expected_sha256, timeout, low_speed_time, directory, remote)
    except _Restart:
        # the partial file cannot be resumed (no range support, or a 416 for a wrong size):
        # starting over is not a failure, so it costs no retry
        return _download_attempt(url, target, part, expected_sha256, timeout, low_speed_time, directory, remote)


class _Restart(Exception):
    pass


def _download_attempt(url, target, part, expected_sha256, timeout, low_speed_time, directory,
                      remote=None) -> TransferStats:
    part_name, target_name = os.path.basename(part), os.path.basename(target)
    unwritable = lambda detail: _fail("GET", url, None, detail, permanent=True)  # noqa: E731
    handle = os.fdopen(_open_part(part, directory, unwritable), "ab")
    with handle:
        offset = os.fstat(handle.fileno()).st_size
        response = _Response()
        curl = _curl(url, timeout, low_speed_time, remote)
        written = 0

        def write(chunk: bytes):
            nonlocal written
            if not response.body_started:
                response.body_started = True
                if response.status == 200 and offset:
                    handle.truncate(0)  # the server ignored the range: start over
                    handle.seek(0)
            if response.status not in (200, 206):
                return None
            handle.write(chunk)
            written += len(chunk)
            return None

        curl.setopt(pycurl.WRITEFUNCTION, write)
        curl.setopt(pycurl.HEADERFUNCTION, response.header_line)
        if offset:
            curl.setopt(pycurl.RESUME_FROM_LARGE, offset)
        try:
            curl.perform()
            response.status = curl.getinfo(pycurl.RESPONSE_CODE)
        except pycurl.error as exc:
            code, message = exc.args[0], exc.args[1] if len(exc.args) > 1 else ""
            status = curl.getinfo(pycurl.RESPONSE_CODE) or None
            _refused("GET", url, curl)
            if code == pycurl.E_WRITE_ERROR and isinstance(exc.__context__, OSError):
                raise _fail("GET", url, None, f"cannot write {part}: {exc.__context__.strerror}",
                            permanent=True) from None
            if code == getattr(pycurl, "E_RANGE_ERROR", 33):
                os.unlink(part_name, dir_fd=directory)
                log.info("%s: the server cannot resume; restarting from zero", redact(url))
                raise _Restart() from None
            if status == 416:
                pass  # handled below
            elif status and status not in (200, 206):
                raise _fail("GET", url, status, response.reason) from None
            else:
                raise _fail("GET", url, None, f"curl error {code}: {message}", permanent=False) from None
        finally:
            curl.close()
        handle.flush()
        # durable before the job may read it (and before preprocessing's commit says it is staged).
        # One fsync at the end: handing each stretch to the write-back as it arrives (tried: fadvise
        # DONTNEED, sync_file_range) slowed the download and evicted the input the job reads next
        # (whole 1 GiB job 5.9-6.5 s against 4.5-4.6 s without)
        os.fsync(handle.fileno())
        status = response.status
        if status == 416:
            total = _content_range_total(response.headers)
            if total is not None and offset == total:
                log.info("%s was already complete (%d bytes)", redact(url), total)
            else:
                os.unlink(part_name, dir_fd=directory)
                log.info("%s: range not satisfiable; restarting from zero", redact(url))
                raise _Restart()
        elif status not in (200, 206):
            raise _fail("GET", url, status, response.reason)
        size = os.fstat(handle.fileno()).st_size
        if status in (200, 206):
            length = response.headers.get("content-length")
            expected = _content_range_total(response.headers) if status == 206 else (int(length) if length else None)
            if expected is not None and size != expected:
                raise _fail("GET", url, status, f"got {size} of {expected} bytes", permanent=False)
        if expected_sha256:
            digest = _sha256(handle.fileno())
            if digest != expected_sha256.lower():
                os.unlink(part_name, dir_fd=directory)
                raise _fail("GET", url, status, f"sha256 mismatch ({digest} != {expected_sha256})", permanent=True)
    os.replace(part_name, target_name, src_dir_fd=directory, dst_dir_fd=directory)
    return TransferStats(bytes=written, resumed_from=offset if status == 206 else 0)


def upload(url: str, source: str, *, retry, timeout: float = 30, low_speed_time: float = 60,
           name: str | None = None) -> TransferStats:
    """POST ``source`` to ``url`` as multipart field ``file`` (its file name ``name``'s, when given)."""
    if not os.path.isfile(source):
        raise _fail("POST", url, None, f"local file {source} does not exist", permanent=True)
    _need_pycurl("POST", url)
    filename = os.path.basename(name or source)
    return _retrying(lambda: _upload_once(url, source, timeout, low_speed_time, filename), url, retry, "upload")


def _upload_once(url, source, timeout, low_speed_time, filename) -> TransferStats:
    if not os.path.isfile(source):
        raise _fail("POST", url, None, f"local file {source} does not exist", permanent=True)
    curl = _curl(url, timeout, low_speed_time)
    mime = pycurl.CurlMime(curl)  # libcurl's mime API (pycurl 7.49+; HTTPPOST is deprecated)
    mime.add_file("file", source, filename=filename)  # libcurl reads the file itself, in C
    curl.setopt(pycurl.MIMEPOST, mime)
    try:
        _send(curl, "POST", url)
    finally:
        mime.close()
    return TransferStats(bytes=os.path.getsize(source))


def _send(curl, method: str, url: str) -> None:
    """Perform a prepared upload (the curl object is closed); TransferError unless the answer is 2xx."""
    response = _Response()
    curl.setopt(pycurl.HEADERFUNCTION, response.header_line)
    curl.setopt(pycurl.WRITEFUNCTION, lambda chunk: None)
    try:
        curl.perform()
        status = curl.getinfo(pycurl.RESPONSE_CODE)
    except pycurl.error as exc:
        code, message = exc.args[0], exc.args[1] if len(exc.args) > 1 else ""
        status = curl.getinfo(pycurl.RESPONSE_CODE) or None
        _refused(method, url, curl)
        if status and not 200 <= status < 300:
            raise _fail(method, url, status, response.reason) from None
        raise _fail(method, url, None, f"curl error {code}: {message}", permanent=False) from None
    finally:
        curl.close()
    if not 200 <= status < 300:
        raise _fail(method, url, status, response.reason)


def put(url: str, source: str, *, retry, timeout: float = 30, low_speed_time: float = 60,
        remote=None) -> TransferStats:
    """PUT ``source``'s bytes to ``url`` (GA4GH TES outputs), retried as other transfers are."""
    if not os.path.isfile(source):
        raise _fail("PUT", url, None, f"local file {source} does not exist", permanent=True)
    return _retrying(lambda: _put_once(url, source, timeout, low_speed_time, remote), url, retry, "upload")


def _put_once(url, source, timeout, low_speed_time, remote) -> TransferStats:
    curl = _curl(url, timeout, low_speed_time, remote)
    with open(source, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        curl.setopt(pycurl.UPLOAD, 1)
        curl.setopt(pycurl.READDATA, handle)
        curl.setopt(pycurl.INFILESIZE_LARGE, size)
        _send(curl, "PUT", url)
    return TransferStats(bytes=size)


def post_data(url: str, data: bytes, name: str, *, timeout: float = 30) -> TransferStats:
    """POST ``data`` to ``url`` as multipart field ``file`` named ``name``, once (live output: its caller
    decides when to try again)."""
    _need_pycurl("POST", url)
    curl = _curl(url, timeout, timeout)
    curl.setopt(pycurl.TIMEOUT, max(1, int(timeout)))
    mime = pycurl.CurlMime(curl)
    mime.add(name="file", data=data, filename=name)
    curl.setopt(pycurl.MIMEPOST, mime)
    try:
        _send(curl, "POST", url)
    finally:
        mime.close()
    return TransferStats(bytes=len(data))
