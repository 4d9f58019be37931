"""Calls into a scheduler's library (htcondor2, DRMAA), one at a time and each with a time limit.

A library call cannot be interrupted: a wedged schedd or qmaster can keep it from returning for minutes. Each
call runs on a daemon thread of its own while the caller waits at most ``timeout`` seconds, so the status
loop, submissions, deletes and shutdown of the manager are never held by it (a daemon thread does not hold
the process at exit either). The library sees one call at a time: the next waits until the one before has
really returned, at most ``timeout`` seconds too, then fails without calling: SchedulerDown, nothing was sent
(a submission waits and is sent again; it is never a refusal of the job).

A call that outlives its limit is OutcomeUnknown: it may still do its work (a submit whose answer was not
waited for), which is what the submission's lookup is for.
"""
from __future__ import annotations

import threading

from .contract import OutcomeUnknown, SchedulerDown


class LibraryCalls:
    def __init__(self, name: str, timeout: float):
        self.name = name
        self.timeout = max(float(timeout), 0.1)
        self._one = threading.Lock()
        #: what the call still running past its limit is (for the "busy" error), or None
        self._wedged: str | None = None

    def __call__(self, what: str, function, *args, **kwargs):
        if not self._one.acquire(timeout=self.timeout):
            raise SchedulerDown(f"{what}: not called, {self.name} has not returned from an earlier call "
                                 f"({self._wedged or 'another call'}) for more than {self.timeout:g} s")
        outcome: dict = {}
        done = threading.Event()

        def run():
            try:
                outcome["value"] = function(*args, **kwargs)
            except BaseException as exc:  # handed to the caller, raised there
                outcome["error"] = exc
            finally:
                self._wedged = None
                self._one.release()
                done.set()

        try:
            threading.Thread(target=run, name=f"{self.name}-call", daemon=True).start()
        except BaseException:
            self._one.release()
            raise
        if not done.wait(self.timeout):
            self._wedged = what
            raise OutcomeUnknown(f"{what} did not return within {self.timeout:g} s ({self.name} may be wedged; "
                                 f"the call may still do its work)")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]
