"""The relay's HTTP contract, one small client per thread (``requests``; auth from pulsar-relay-client).

* login / refresh: ``pulsar_relay_client.build_auth_manager`` (password, or the rotating refresh token of
  ``message_queue_credentials_file``); its access token is renewed five minutes before it expires, and a
  401 invalidates it once and asks again.
* publish: ``POST /api/v1/messages`` (one) or ``/api/v1/messages/bulk`` (up to 100), each with the
  ``Idempotency-Key`` the caller derives from its outbox entries, so a retry is never a second message.
* consume: ``POST /messages/poll`` with ``{"topics", "timeout", "since": {topic: message_id}}``.

Every failure is one of the exceptions below, so the threads can tell a throttle (429: back off, then
publish in bulk), an outage (connection, timeout, 5xx: retry), bad credentials (say so, retry slowly) and a
refusal of the message itself (4xx) apart.
"""
from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)

MAX_BULK = 100


class RelayError(Exception):
    """A request to the relay failed."""


class RelayUnavailable(RelayError):
    """Connection refused or cut, a timeout, or a 5xx: the relay may answer later."""


class RelayThrottled(RelayError):
    """429: too many requests from this address (or too many long polls of this user)."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class RelayAuthFailed(RelayError):
    """The relay refused the credentials (login, refresh token, or a token it does not accept)."""


class RelayRefused(RelayError):
    """A 4xx other than 401/429: the relay will not take this request as it is."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def auth_manager(settings):
    """The pulsar-relay-client auth manager for ``settings`` (shared by the face's threads)."""
    try:
        from pulsar_relay_client import build_auth_manager
    except ImportError as exc:  # pragma: no cover - declared in the relay extra
        raise RelayError("the relay face needs pulsar-relay-client: pip install 'pulsar_lite[relay]'") from exc
    credentials = settings.credentials_file
    import os

    if credentials and not os.path.exists(credentials):
        if not (settings.username and settings.password):
            raise RelayAuthFailed(f"message_queue_credentials_file {credentials} does not exist: run "
                                  f"`pulsar-config --login` (Pulsar's command; pulsar_lite has none yet)")
    return build_auth_manager(settings.url, username=settings.username, password=settings.password,
                              credentials_file=credentials)


class RelayHttp:
    def __init__(self, settings, auth, timeout: float = 30.0):
        import requests

        self._requests = requests
        self.url = settings.url.rstrip("/")
        self.auth = auth
        self.timeout = timeout
        self.session = requests.Session()
        self._lock = threading.Lock()

    def close(self) -> None:
        self.session.close()

    # -- requests -----------------------------------------------------------------------
    def _token(self) -> str:
        try:
            return self.auth.get_token()
        except Exception as exc:
            raise self._login_error(exc) from exc

    def _login_error(self, exc: Exception) -> RelayError:
        """What a failed login or refresh means: the relay is away, throttles, or refuses the credentials."""
        cause = exc if isinstance(exc, self._requests.RequestException) else exc.__cause__
        text = f"login to {self.url} failed: {exc}"
        if isinstance(cause, (self._requests.ConnectionError, self._requests.Timeout)):
            return RelayUnavailable(text)
        status = getattr(getattr(cause, "response", None), "status_code", None)
        if status == 429:
            return RelayThrottled(text)
        if status is not None and status >= 500:
            return RelayUnavailable(text)
        return RelayAuthFailed(text)

    def _post(self, path: str, body: dict, timeout: float, key: str | None = None):
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self._token()}"}
            if key:
                headers["Idempotency-Key"] = key
            try:
                response = self.session.post(self.url + path, json=body, headers=headers, timeout=timeout)
            except self._requests.Timeout as exc:
                raise RelayUnavailable(f"{path}: timed out ({exc})") from exc
            except self._requests.RequestException as exc:
                raise RelayUnavailable(f"{path}: {type(exc).__name__}: {exc}") from exc
            if response.status_code == 401 and attempt == 1:
                self.auth.invalidate()  # expired or revoked: log in (or refresh) once more
                continue
            return self._check(path, response)
        raise AssertionError("unreachable")

    def _check(self, path: str, response):
        status = response.status_code
        if status < 300 or status == 207:
            try:
                return response.json()
            except ValueError as exc:
                raise RelayUnavailable(f"{path}: answer is not JSON") from exc
        detail = response.text[:200]
        if status == 401 or status == 403:
            raise RelayAuthFailed(f"{path}: HTTP {status} {detail}")
        if status == 429:
            retry_after = response.headers.get("Retry-After")
            try:
                delay = float(retry_after) if retry_after else None
            except ValueError:
                delay = None
            raise RelayThrottled(f"{path}: HTTP 429 {detail}", delay)
        if status >= 500:
            raise RelayUnavailable(f"{path}: HTTP {status} {detail}")
        raise RelayRefused(f"{path}: HTTP {status} {detail}", status)

    # -- the contract --------------------------------------------------------------------
    def publish(self, topic: str, payload: dict, key: str) -> str | None:
        """One message; its message_id."""
        return self._post("/api/v1/messages", {"topic": topic, "payload": payload}, self.timeout, key).get(
            "message_id")

    def publish_bulk(self, messages: list[tuple[str, dict]], key: str) -> list[bool]:
        """Up to ``MAX_BULK`` messages in one request; per message, whether the relay accepted it."""
        body = {"messages": [{"topic": topic, "payload": payload} for topic, payload in messages]}
        answer = self._post("/api/v1/messages/bulk", body, self.timeout, key)
        results = answer.get("results") or []
        return [i < len(results) and results[i].get("status") == "accepted" for i in range(len(messages))]

    def poll(self, topics: list[str], since: dict[str, str], timeout: int) -> list[dict]:
        """Messages after ``since`` on ``topics``, waiting up to ``timeout`` seconds for one."""
        body = {"topics": topics, "timeout": timeout}
        if since:
            body["since"] = {t: since[t] for t in topics if t in since}
        answer = self._post("/messages/poll", body, timeout + 10)
        return answer.get("messages") or []

    def health(self) -> bool:
        try:
            return self.session.get(self.url + "/health", timeout=5).status_code == 200
        except self._requests.RequestException:
            return False
