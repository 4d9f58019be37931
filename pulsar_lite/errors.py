"""Exceptions that carry a client-facing meaning.

Transports map them: REST to an HTTP status with a one-line reason, AMQP to
a rejected message with a logged reason. Anything else is an internal error.
"""


class PulsarLiteError(Exception):
    status = 500


class BadRequest(PulsarLiteError):
    status = 400


class Unauthorized(PulsarLiteError):
    status = 401


class Forbidden(PulsarLiteError):
    status = 403


class NotFound(PulsarLiteError):
    status = 404


class RequestTimeout(PulsarLiteError):
    """The client stopped sending in the middle of its request body."""

    status = 408


class Conflict(PulsarLiteError):
    status = 409


class LengthRequired(PulsarLiteError):
    status = 411


class PayloadTooLarge(PulsarLiteError):
    status = 413


class StoreUnavailable(PulsarLiteError):
    """The job store cannot be written just now (disk full, locked past the busy timeout, an I/O error):
    nothing was changed; the same request may succeed later."""

    status = 503


class NotSupported(PulsarLiteError):
    """A Pulsar feature pulsar_lite does not provide (yet)."""

    status = 501


class ConfigError(Exception):
    """Configuration is invalid; the message names the key and file."""


class StateInUse(ConfigError):
    """Another daemon holds the state directory (two engines on one store would both run its jobs)."""


class StoreOpenError(ConfigError):
    """The job store cannot be opened at start (damaged, unreadable, or written by a newer version)."""


class ManagerUnavailable(ConfigError):
    """A manager type's optional dependency is missing."""
