"""What each consumed message does (reference sections 2.3-2.5).

One ``MessageHandler`` per broker. Broker acks come last: a ``setup`` message
is acked only after ``engine.submit`` returned (the job is durably recorded),
and replies it causes are in the ledger before the ack. A message that cannot
be handled is rejected (``requeue=False``) with its reason logged; the
consumer goes on with the next one. A message over ``amqp_max_message_size`` is
rejected before anything decodes it.
"""
from __future__ import annotations

import logging
import re
from typing import Callable

from .. import wire
from ..errors import PulsarLiteError, StoreUnavailable
from ..store_health import is_unwritable
from .ledger import Ledger, Outgoing
from .logsafe import clip
from .router import Router
from .topology import (
    ACK_QUEUE,
    ACK_RESPONSE,
    ACK_UUID,
    KILL,
    SETUP,
    STATUS,
    STATUS_UPDATE,
    STATUS_UPDATE_ACK,
    Topology,
)

log = logging.getLogger(__name__)

#: a short string value after a key of a raw JSON body (the acknowledgement keys of an oversized message)
_RAW_VALUE = re.compile(rb'\s*:\s*"([A-Za-z0-9_.\-]{1,200})"')


#: seconds a message waits before it goes back to the broker while the job store cannot be written
OUTAGE_RETRY = 1.0


class Rejected(Exception):
    """The message cannot be handled; ``notify`` asks for a ``failed`` update to the client."""

    def __init__(self, reason: str, notify: bool = False):
        super().__init__(reason)
        self.notify = notify


class MessageHandler:
    def __init__(self, engine, ledger: Ledger, router: Router, topology: Topology, broker: str,
                 wake: Callable[[], None], max_message_size: int = 16 * 1024 * 1024):
        self.engine = engine
        self.ledger = ledger
        self.router = router
        self.topology = topology
        self.broker = broker
        self.wake = wake
        self.max_message_size = max_message_size
        self._outage: str | None = None  # set while messages wait for the job store (said once)

    # -- kombu callbacks -------------------------------------------------------------
    def on_delivery(self, manager: str, logical: str, message) -> None:
        """kombu's ``on_message``: a delivery as received, its size checked before anything decodes it."""
        size = len(message.body or b"")
        if size > self.max_message_size:
            self._reject_oversized(manager, logical, message, size)
            return
        try:
            body = message.decode()
        except Exception as exc:
            self.on_decode_error(message, exc)
            return
        self.on_message(manager, logical, body, message)

    def on_message(self, manager: str, logical: str, body, message) -> None:
        """A decoded message (of at most ``max_message_size`` bytes)."""
        queue = self.topology.name(logical, manager)
        job_id = body.get("job_id") if isinstance(body, dict) else None
        ack_uuid = None
        reply = None
        if logical != STATUS_UPDATE_ACK and isinstance(body, dict) and isinstance(body.get(ACK_UUID), str) \
                and body[ACK_UUID]:
            ack_uuid = body[ACK_UUID]
            reply = self._ack_reply(body, logical, manager, ack_uuid)
        try:
            if not isinstance(body, dict):
                raise Rejected(f"the body is a JSON {type(body).__name__}, not an object")
            if logical == STATUS_UPDATE_ACK:
                self._status_update_ack(body)
                outgoing = None
            elif ack_uuid and self.ledger.seen(ack_uuid):
                log.info("%s: message %s for job %s was already handled; acknowledging it again", queue,
                         clip(ack_uuid), clip(job_id))
                outgoing = []
            else:
                outgoing = self._dispatch(manager, logical, body)
        except Exception as exc:
            if not is_unwritable(exc):
                return self._failed(queue, manager, logical, job_id, message, ack_uuid, reply, exc)
            self._retry_later(queue, job_id, message, exc)
            return
        # Outside the try: a connection lost while acknowledging is not the handler's failure; it reaches the
        # consumer, which reconnects, and the broker redelivers the message (a handled one is recognised by its
        # ack_uuid or by the job's state).
        if outgoing is not None:
            try:
                self._commit(outgoing, ack_uuid, reply)
            except Exception as exc:
                if not is_unwritable(exc):
                    raise
                self._retry_later(queue, job_id, message, exc)  # handled: its redelivery is recognised
                return
        self._outage = None
        message.ack()

    def _retry_later(self, queue: str, job_id, message, exc: BaseException) -> None:
        """The job store (or the ledger beside it) cannot be written: nothing is lost or refused; the message
        goes back to the broker after a pause and is handled once the store can be written (said once)."""
        if self._outage is None:
            log.warning("%s: messages wait in the broker while the job store cannot be written (%s)", queue,
                        clip(str(exc), 200))
        self._outage = str(exc)
        log.debug("%s: message for job %s requeued (the job store cannot be written)", queue, clip(job_id))
        self.engine.stopping.wait(OUTAGE_RETRY)
        message.requeue()

    def _failed(self, queue: str, manager: str, logical: str, job_id, message, ack_uuid, reply,
                exc: Exception) -> None:
        if isinstance(exc, Rejected):
            log.warning("%s: message for job %s rejected: %s", queue, clip(job_id), exc)
            notices = self._failure_notice(manager, job_id, str(exc)) if exc.notify else []
            self._commit(notices, ack_uuid, reply)  # acknowledged too: it must not come back every 30 s
            message.reject(requeue=False)
            return
        redelivered = (message.delivery_info or {}).get("redelivered", True)
        if not redelivered:
            log.exception("%s: handling the message for job %s failed; requeued for one more try", queue,
                          clip(job_id))
            message.requeue()
            return
        log.exception("%s: handling the redelivered message for job %s failed again; rejected", queue,
                      clip(job_id))
        notices = self._failure_notice(manager, job_id, f"internal error: {exc}") if logical == SETUP else []
        self._commit(notices, ack_uuid, reply)
        message.reject(requeue=False)

    def on_decode_error(self, message, exc) -> None:
        key = (message.delivery_info or {}).get("routing_key")
        log.warning("%s: undecodable message rejected (content type %s): %s", key, clip(message.content_type),
                    clip(str(exc), 200))
        message.reject(requeue=False)

    def _reject_oversized(self, manager: str, logical: str, message, size: int) -> None:
        """Rejected unread. Still acknowledged when its ``acknowledge_uuid`` can be found without parsing it,
        so that its client does not republish it every ``amqp_ack_republish_time``."""
        ack_uuid = reply = None
        if logical != STATUS_UPDATE_ACK:
            ack_uuid = _raw_string(message.body, ACK_UUID)
        if ack_uuid:
            ack_queue = _raw_string(message.body, ACK_QUEUE)
            reply = self._ack_reply({ACK_QUEUE: ack_queue} if ack_queue else {}, logical, manager, ack_uuid)
        log.warning("%s: message of %d bytes rejected unread: over amqp_max_message_size (%d)%s",
                    self.topology.name(logical, manager), size, self.max_message_size,
                    f"; acknowledging {clip(ack_uuid)}" if reply else "")
        self._commit([], ack_uuid, reply)
        message.reject(requeue=False)

    # -- handlers ------------------------------------------------------------------------
    def _dispatch(self, manager: str, logical: str, body: dict) -> list[Outgoing]:
        if logical == SETUP:
            if body.get("request") == "status":  # clients before 0.16 asked on the setup queue
                return self._status(manager, body)
            return self._setup(manager, body)
        if logical == STATUS:
            return self._status(manager, body)
        if logical == KILL:
            return self._kill(manager, body)
        raise Rejected(f"no handler for queue {logical}")

    def _setup(self, manager: str, body: dict) -> list[Outgoing]:
        job_id = self._job_id(body)
        reserved = wire.reserved_job_id(job_id)
        if reserved:
            raise Rejected(reserved)
        command_line = body.get("command_line")
        if not isinstance(command_line, str) or not command_line.strip():
            raise Rejected("missing command_line", notify=True)
        record = self.engine.store.get(manager, job_id)
        if record is not None and record.state != wire.SETUP:
            # redelivery or a client republish: Pulsar ignores these; we re-announce the state
            log.info("job %s [%s]: duplicate setup ignored (the job is %s)", job_id, manager, record.state)
            if record.state in wire.PUBLISHED_STATES:
                return [self.router.reply_status(self.broker, manager, job_id)]
            return []
        if self.ledger.killed(manager, job_id):
            return self._cancel_killed(manager, job_id, body)
        self.ledger.remember_origin(manager, job_id, self.broker)
        try:  # the message as Pulsar reads it (wire.read_launch): setup flag or setup_params, defaults, touch_outputs
            self.engine.submit(manager, job_id, body, touch_outputs=body.get("touch_outputs"))
        except StoreUnavailable:
            raise
        except PulsarLiteError as exc:
            raise Rejected(str(exc), notify=True) from None
        log.info("job %s [%s]: accepted from %s", job_id, manager, self.broker)
        return []

    def _cancel_killed(self, manager: str, job_id: str, body: dict) -> list[Outgoing]:
        """The setup of a job whose kill came first (e.g. this setup was requeued, or redelivered after a
        crash): the job is recorded ``cancelled`` without running, and its status goes to the client."""
        params = body.get("setup_params") if isinstance(body.get("setup_params"), dict) else {}
        tool_id, tool_version = (v if isinstance(v, str) else None
                                 for v in (params.get("tool_id"), params.get("tool_version")))
        try:
            self.engine.setup(manager, job_id, tool_id, tool_version, assign_id=False)
            self.engine.cancel(manager, job_id)
        except StoreUnavailable:
            raise
        except PulsarLiteError as exc:
            raise Rejected(str(exc)) from None
        self.ledger.forget_kill(manager, job_id)
        log.info("job %s [%s]: setup of a job killed before it came; cancelled without running", job_id, manager)
        return [self.router.reply_status(self.broker, manager, job_id)]

    def _status(self, manager: str, body: dict) -> list[Outgoing]:
        job_id = self._job_id(body)
        return [self.router.reply_status(self.broker, manager, job_id)]

    def _kill(self, manager: str, body: dict) -> list[Outgoing]:
        job_id = self._job_id(body)
        if self.engine.store.get(manager, job_id) is None:
            self.ledger.remember_kill(manager, job_id)
            log.info("job %s [%s]: kill for an unknown job remembered: a setup for it will not run", job_id,
                     manager)
            return []
        try:
            self.engine.cancel(manager, job_id)
        except StoreUnavailable:
            raise
        except PulsarLiteError as exc:
            raise Rejected(str(exc)) from None
        log.info("job %s [%s]: kill requested", job_id, manager)
        return []

    def _status_update_ack(self, body: dict) -> None:
        uuid = body.get(ACK_RESPONSE)
        if not isinstance(uuid, str) or not uuid:
            raise Rejected(f"no {ACK_RESPONSE}")
        if not self.ledger.acknowledged(uuid):
            log.debug("acknowledgement for unknown or already acknowledged update %s", clip(uuid))

    # -- helpers ----------------------------------------------------------------------------
    @staticmethod
    def _job_id(body: dict) -> str:
        job_id = body.get("job_id")
        if isinstance(job_id, int) and not isinstance(job_id, bool):
            job_id = str(job_id)
        if not isinstance(job_id, str) or not job_id:
            raise Rejected("missing job_id")
        if not wire.valid_job_id(job_id):
            raise Rejected(f"invalid job_id {job_id[:80]!r}")
        return job_id

    def _ack_reply(self, body: dict, logical: str, manager: str, ack_uuid: str) -> Outgoing | None:
        key = self.topology.ack_reply_key(body, logical, manager)
        if key is None:
            log.warning("message %s names an invalid acknowledge_queue; no acknowledgement sent", clip(ack_uuid))
            return None
        return Outgoing(self.broker, key, {ACK_RESPONSE: ack_uuid})

    def _failure_notice(self, manager: str, job_id, reason: str) -> list[Outgoing]:
        """A ``failed`` update for a job whose setup was refused, so its client does not wait forever."""
        if isinstance(job_id, int) and not isinstance(job_id, bool):
            job_id = str(job_id)
        if not isinstance(job_id, str) or not wire.valid_job_id(job_id):
            return []
        try:
            record = self.engine.store.get(manager, job_id)
        except Exception:
            return []
        if record is not None and record.state != wire.SETUP:
            return []  # a malformed duplicate of a job that is fine: leave it alone
        payload = {"job_id": job_id, "complete": "true", "status": wire.State.FAILED, "returncode": None,
                   "stdout": "", "stderr": f"pulsar_lite refused the job: {reason}"}
        return [Outgoing(self.broker, self.topology.name(STATUS_UPDATE, manager), payload)]

    def _commit(self, outgoing: list[Outgoing], ack_uuid: str | None, reply: Outgoing | None) -> None:
        messages = list(outgoing) + ([reply] if reply is not None else [])
        if not messages and not ack_uuid:
            return
        self.ledger.enqueue(messages, seen_uuid=ack_uuid)
        if messages:
            self.wake()


def _raw_string(body, key: str) -> str | None:
    """The value of ``"key": "<short string>"`` in a raw JSON body, without parsing it. Clients add the
    acknowledgement keys last, so the last occurrence is taken."""
    if isinstance(body, str):
        body = body.encode("utf-8", "replace")
    at = body.rfind(b'"%s"' % key.encode())
    if at < 0:
        return None
    match = _RAW_VALUE.match(body, at + len(key) + 2)
    return match.group(1).decode() if match else None
