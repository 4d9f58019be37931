"""What the transfer tests share: a real HTTP origin that injects faults, and a fast retry policy."""
import os
import warnings

import pytest

from pulsar_lite.staging import RetryPolicy, transfer

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from .faultserver import FaultServer

SIZE = 3 * 1024 * 1024


@pytest.fixture
def origin(tmp_path):
    root = tmp_path / "origin"
    root.mkdir()
    (root / "data.bin").write_bytes(os.urandom(SIZE))
    with FaultServer(str(root)) as server:
        yield server


@pytest.fixture
def sleeps(monkeypatch):
    recorded = []
    monkeypatch.setattr(transfer, "_sleep", recorded.append)
    return recorded


def policy(retries=3):
    return RetryPolicy(max_retries=retries, interval_start=1.0, interval_step=2.0, interval_max=4.0)


def data(origin):
    return open(os.path.join(origin.root, "data.bin"), "rb").read()
