"""queued_condor's calls to the schedd, made in a child process.

The htcondor2 bindings keep Python's global interpreter lock while they wait for the schedd: a schedd that
accepts connections and never answers (overloaded, stopped, wedged) froze every thread of the daemon, its
REST and AMQP faces and the other managers included, for as long as HTCondor's own timeout (20 s a call,
measured), at every poll. Here each call is a line of JSON to a child process that holds the bindings; the
daemon waits on a pipe (without the lock) for at most ``scheduler_call_timeout`` seconds, and a child that has
not answered by then is killed (with its call) and replaced at the next call. One call at a time.

Run as ``python -m pulsar_lite.managers.schedd_process``: requests on stdin, answers on the original stdout
(anything the bindings print goes to stderr), one JSON object a line each way.
"""
from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import threading
import time

from .contract import OutcomeUnknown, SchedulerDown, SchedulerError


class ScheddProcess:
    """The daemon's side: one child process, one call at a time, each with a time limit."""

    def __init__(self, name: str, timeout: float, schedd_name: str | None = None, collector: str | None = None):
        self.name = name
        self.timeout = max(float(timeout), 0.1)
        self.target = {"schedd_name": schedd_name, "collector": collector}
        self._one = threading.Lock()
        self._process: subprocess.Popen | None = None

    def call(self, what: str, method: str, **arguments):
        """The child's answer to ``method``; SchedulerDown when the schedd cannot be located, SchedulerError when
        the call failed, OutcomeUnknown when it did not answer in time (it is killed: the call may have done its
        work all the same)."""
        if not self._one.acquire(timeout=self.timeout):  # nothing sent: a submission waits, never refused
            raise SchedulerDown(f"{what}: not called, an earlier HTCondor call has not returned for more than "
                                 f"{self.timeout:g} s")
        try:
            return self._call(what, method, arguments)
        finally:
            self._one.release()

    def _call(self, what: str, method: str, arguments: dict):
        process = self._child()
        try:
            process.stdin.write((json.dumps({"method": method, "arguments": arguments, **self.target}) + "\n").encode())
        except (OSError, ValueError) as exc:  # the child died: nothing was sent (a submission waits, never refused)
            self._kill()
            raise SchedulerDown(f"{what}: the HTCondor call process is gone ({exc})") from None
        line = self._read_line(process)
        if line is None:
            self._kill()
            raise OutcomeUnknown(f"{what} did not return within {self.timeout:g} s (the schedd may be wedged; the "
                                 f"call may still do its work)")
        if not line:
            self._kill()
            raise OutcomeUnknown(f"{what}: the HTCondor call process ended without an answer")
        answer = json.loads(line)
        if "ok" in answer:
            return answer["ok"]
        if answer.get("kind") == "locate":
            raise SchedulerDown(f"{what} failed: cannot locate the schedd: {answer['error']}")
        if answer.get("kind") == "invalid":
            raise SchedulerError(f"invalid submit description: {answer['error']}")
        if answer.get("kind") == "refused":
            raise SchedulerError(f"{what}: the schedd refused it: {answer['error']}")
        raise CallFailed(f"{what} failed: {answer['error']}")

    def _read_line(self, process: subprocess.Popen) -> str | None:
        """One line from the child, or None when it has not written one within the time limit."""
        deadline = time.monotonic() + self.timeout
        data = b""
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while not data.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    return None
                chunk = os.read(process.stdout.fileno(), 1 << 20)
                if not chunk:
                    return ""
                data += chunk
        return data.decode()

    def _child(self) -> subprocess.Popen:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "pulsar_lite.managers.schedd_process"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, bufsize=0)
        return self._process

    def _kill(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def close(self) -> None:
        """At shutdown: without waiting for a call in flight."""
        self._kill()


class CallFailed(SchedulerError):
    """The schedd answered the call with an error (the call is tried again on a schedd located afresh)."""


# -- the child ----------------------------------------------------------------------------------------------
def _plain(value):
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


def _ads(ads, projection) -> list[dict]:
    keys = list(projection or [])
    return [{key: _plain(ad.get(key)) for key in (keys or list(ad.keys()))} for ad in ads]


#: what the bindings say when the schedd refused a submit's transaction
REFUSED = "Unable to commit transaction"


def _serve() -> None:
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever the bindings print goes to stderr, never into an answer
    import htcondor2

    schedd = None
    for line in sys.stdin:
        request = json.loads(line)
        method, arguments = request["method"], request["arguments"]
        try:
            if schedd is None:
                collector = htcondor2.Collector(request.get("collector"))
                daemon = htcondor2.DaemonType.Schedd
                name = request.get("schedd_name")
                schedd = htcondor2.Schedd(collector.locate(daemon, name) if name else collector.locate(daemon))
        except Exception as exc:  # the bindings raise HTCondorException, ValueError, ...
            answers.write(json.dumps({"error": str(exc).strip() or type(exc).__name__, "kind": "locate"}) + "\n")
            continue
        try:
            if method == "submit":
                try:
                    description = htcondor2.Submit(arguments["description"])
                except Exception as exc:
                    answers.write(json.dumps({"error": str(exc).strip() or type(exc).__name__,
                                              "kind": "invalid"}) + "\n")
                    continue
                result = int(schedd.submit(description).cluster())
            elif method == "remove":
                schedd.act(htcondor2.JobAction.Remove, arguments["constraint"], reason=arguments["reason"])
                result = None
            elif method in ("query", "history"):
                ads = getattr(schedd, method)(**arguments)
                result = _ads(ads, arguments.get("projection"))
            else:
                raise ValueError(f"unknown method {method!r}")
            answers.write(json.dumps({"ok": result}) + "\n")
        except Exception as exc:
            schedd = None  # located afresh at the next call: the schedd may have moved or restarted
            text = str(exc).strip() or type(exc).__name__
            # the schedd aborted the submit's transaction and said why (an owner it does not permit, a
            # SUBMIT_REQUIREMENTS not met): a refusal, nothing was queued
            kind = "refused" if method == "submit" and REFUSED in text and "SCHEDD:" in text else "call"
            answers.write(json.dumps({"error": text, "kind": kind}) + "\n")


if __name__ == "__main__":
    _serve()
