"""Pushed files are on disk before they count as uploaded when the store promises power-cut safety."""
import io
import os

import pytest

from pulsar_lite import fsutil


@pytest.fixture
def synced_partials(monkeypatch):
    """Paths under a .partial directory that fdatasync was called on (not the store's log)."""
    calls = []
    real = os.fdatasync

    def spy(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        if "/.partial/" in path:
            calls.append(path)
        real(fd)

    monkeypatch.setattr(fsutil.os, "fdatasync", spy)
    return calls


@pytest.mark.parametrize("synchronous, syncs", [("full", 2), ("normal", 0)])
def test_uploads_follow_store_synchronous(engine_factory, synced_partials, tmp_path, synchronous, syncs):
    engine = engine_factory(store_synchronous=synchronous)
    engine.setup("_default_", "u1")
    body = b"input bytes\n" * 100
    target = engine.upload("_default_", "u1", "a.dat", "input", io.BytesIO(body), len(body))
    cached = tmp_path / "cached"
    cached.write_bytes(body)
    engine.upload("_default_", "u1", "b.dat", "input", None, None, cache_path=str(cached))
    assert open(target, "rb").read() == body
    assert len(synced_partials) == syncs
