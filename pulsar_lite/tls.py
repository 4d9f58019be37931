"""HTTPS for the REST and TES faces (Pulsar's ``ssl_pem``: one PEM file holding the certificate, its chain and
the private key). paste gets Python's TLS on its listening socket (each connection's handshake runs on its own
worker thread, under ``web_io_timeout``: a client that never finishes one holds no other); SIGHUP loads the
file again for the connections that follow (a renewed certificate without a restart). granian takes the file
itself (a restart picks up a renewed one). ``doctor`` reads the certificate: expiry, key match."""
from __future__ import annotations

import datetime
import logging
import ssl
import subprocess

from .errors import ConfigError

log = logging.getLogger(__name__)

#: days before expiry from which doctor warns
EXPIRY_WARNING_DAYS = 14


def server_context(pem: str) -> ssl.SSLContext:
    """A server context with the certificate and key of ``pem``; ConfigError with the reason when they cannot
    be read or do not match."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    load(context, pem)
    return context


def load(context: ssl.SSLContext, pem: str) -> None:
    try:
        context.load_cert_chain(pem)
    except FileNotFoundError:
        raise ConfigError(f"ssl_pem {pem}: no such file") from None
    except PermissionError:
        raise ConfigError(f"ssl_pem {pem}: not readable by this user") from None
    except ssl.SSLError as exc:
        raise ConfigError(f"ssl_pem {pem}: not a certificate with its matching private key ({exc.reason or exc})"
                          ) from None


def reload(listener, pem: str) -> None:
    """Load ``pem`` again (SIGHUP) into a new context the listening socket hands to the connections that follow;
    a file that cannot serve leaves the current context whole (loading into it would replace its certificate
    before finding the key does not match)."""
    try:
        fresh = server_context(pem)
    except ConfigError as exc:
        log.error("%s; still serving the certificate loaded before", exc)
        return
    if isinstance(listener, ssl.SSLSocket):
        # a listening socket has no TLS session of its own (the context setter would reach for it); accept()
        # wraps each connection with the socket's _context
        listener._context = fresh
    else:
        listener.context = fresh
    log.info("ssl_pem %s loaded again: new connections get its certificate", pem)


def wrap_listener(sock, context: ssl.SSLContext):
    """The listening socket, speaking TLS on each connection it accepts (the handshake at the first read)."""
    return context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)


def certificate_expiry(pem: str) -> datetime.datetime | None:
    """When the (first) certificate of ``pem`` expires, in UTC (None when openssl cannot say)."""
    try:
        done = subprocess.run(["openssl", "x509", "-in", pem, "-noout", "-enddate"], capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0 or "=" not in done.stdout:
        return None
    try:
        return datetime.datetime.strptime(done.stdout.strip().split("=", 1)[1], "%b %d %H:%M:%S %Y %Z").replace(
            tzinfo=datetime.timezone.utc)
    except ValueError:
        return None


def check(pem: str | None, host: str) -> list[tuple[str, str]]:
    """doctor's findings about TLS: (level, message) pairs, level "ok", "warn" or "fail"."""
    if not pem:
        if host not in ("127.0.0.1", "::1", "localhost"):
            return [("warn", f"TLS is off (no ssl_pem) and the daemon listens on {host}: the token and every "
                             f"file cross the network in clear text")]
        return [("ok", "TLS is off; the daemon listens on loopback only")]
    try:
        server_context(pem)
    except ConfigError as exc:
        return [("fail", str(exc))]
    expiry = certificate_expiry(pem)
    if expiry is None:
        return [("warn", f"ssl_pem {pem}: certificate and key match; its expiry could not be read")]
    left = expiry - datetime.datetime.now(datetime.timezone.utc)
    if left.total_seconds() <= 0:
        return [("fail", f"ssl_pem {pem}: the certificate expired on {expiry:%Y-%m-%d %H:%M} UTC")]
    if left.days < EXPIRY_WARNING_DAYS:
        return [("warn", f"ssl_pem {pem}: the certificate expires in {left.days} day(s), on {expiry:%Y-%m-%d}")]
    return [("ok", f"ssl_pem {pem}: certificate and key match; valid until {expiry:%Y-%m-%d}")]
