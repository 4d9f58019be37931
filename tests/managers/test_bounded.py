"""Calls into a scheduler library that may never return (a wedged schedd or qmaster): each is waited for a
bounded time, one runs at a time, and a wedged one holds neither the caller nor the process's exit."""
from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from pulsar_lite.managers.bounded import LibraryCalls
from pulsar_lite.managers.contract import OutcomeUnknown, SchedulerError


def test_a_call_that_returns_in_time_gives_its_value_or_its_error():
    calls = LibraryCalls("lib", 1.0)
    assert calls("add", lambda a, b: a + b, 2, 3) == 5
    with pytest.raises(SchedulerError, match="refused"):
        calls("refuse", lambda: (_ for _ in ()).throw(SchedulerError("refused")))


def test_a_wedged_call_is_given_up_and_the_next_fails_fast_until_it_returns():
    calls = LibraryCalls("lib", 0.3)
    release = threading.Event()
    began = time.monotonic()
    with pytest.raises(OutcomeUnknown, match="did not return within 0.3 s"):
        calls("submit", release.wait)  # a library call stuck in a read from a schedd that never answers
    assert time.monotonic() - began < 1.0
    with pytest.raises(SchedulerError, match="has not returned from an earlier call \\(submit\\)") as raised:
        calls("query", lambda: "never called")
    assert not isinstance(raised.value, OutcomeUnknown)  # nothing was called: nothing may have happened
    release.set()
    time.sleep(0.05)
    assert calls("query", lambda: "answered") == "answered"  # one at a time again, once it returned


def test_one_call_at_a_time():
    calls = LibraryCalls("lib", 2.0)
    inside, most = [0], [0]
    lock = threading.Lock()

    def call():
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.02)
        with lock:
            inside[0] -= 1

    threads = [threading.Thread(target=calls, args=("c", call)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 1


def test_a_wedged_call_does_not_hold_the_process_at_exit():
    program = ("import threading\nfrom pulsar_lite.managers.bounded import LibraryCalls\n"
               "try:\n    LibraryCalls('lib', 0.2)('wedge', threading.Event().wait)\n"
               "except Exception as exc:\n    print(type(exc).__name__)\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=20)
    assert done.returncode == 0 and done.stdout.strip() == "OutcomeUnknown", done.stderr
