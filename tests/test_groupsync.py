import os
import sqlite3
import threading
import time

from pulsar_lite import groupsync
from pulsar_lite.groupsync import GroupSync
from pulsar_lite.store import Store
from pulsar_lite import wire


def test_every_waiter_returns_after_an_fsync_that_began_after_its_commit(tmp_path, monkeypatch):
    db = sqlite3.connect(tmp_path / "x.sqlite")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (x)")
    sync = GroupSync(str(tmp_path / "x.sqlite"))
    started = []  # (committed count when each fsync began)
    real_fsync = os.fdatasync

    def slow_fsync(fd):
        started.append(sync._committed)
        time.sleep(0.02)
        real_fsync(fd)

    monkeypatch.setattr(groupsync.os, "fdatasync", slow_fsync)
    problems = []
    lock = threading.Lock()

    def writer():
        for _ in range(10):
            with lock:
                ticket = sync.committed()
            sync.wait(ticket)
            # some fsync that started after this commit has finished
            if not any(count >= ticket for count in started):
                problems.append(ticket)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert problems == []
    assert sync._synced == 80
    assert sync.fsyncs < 80 / 2  # commits made together shared fsyncs
    sync.close()


def test_store_commits_are_grouped_and_full_is_the_default(tmp_path):
    store = Store(str(tmp_path / "db.sqlite"))
    assert store._sync is not None
    store.create("m", "first")

    def job(index):
        store.create("m", f"j{index}")
        store.transition("m", f"j{index}", wire.State.QUEUED)

    threads = [threading.Thread(target=job, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store._sync._synced == store._sync._committed == 33
    assert all(store.get("m", f"j{i}").state == wire.State.QUEUED for i in range(16))
    store.close()
    assert Store(str(tmp_path / "db.sqlite"), synchronous="normal")._sync is None


def test_non_durable_commits_ride_on_the_next_fsync_and_a_finished_jobs_delete_needs_none(tmp_path):
    store = Store(str(tmp_path / "db.sqlite"))
    sync = store._sync
    store.create("m", "1")
    store.transition("m", "1", wire.State.QUEUED)
    store.transition("m", "1", wire.State.RUNNING, durable=False, pid=7)
    assert sync._synced < sync._committed  # returned before the disk had it
    fsyncs = sync.fsyncs
    store.transition("m", "1", (wire.State.POSTPROCESSING, wire.State.COMPLETE), returncode=0)
    assert sync._synced == sync._committed and sync.fsyncs == fsyncs + 1  # one fsync took both along
    store.delete("m", "1", durable=False)  # what it deletes is on disk already: no fsync
    assert sync.fsyncs == fsyncs + 1 and sync._synced < sync._committed
    store.create("m", "2")
    store.transition("m", "2", wire.State.QUEUED)
    store.transition("m", "2", wire.State.RUNNING, durable=False)
    assert sync.fsyncs == fsyncs + 3  # create and queued
    store.delete("m", "2", durable=False)  # the running state it deletes is synced first
    assert sync.fsyncs == fsyncs + 4 and sync._synced == sync._committed - 1
    sync.wait_committed()
    assert sync.fsyncs == fsyncs + 5 and sync._synced == sync._committed
    sync.wait_committed()
    assert sync.fsyncs == fsyncs + 5  # nothing new: no fsync
    store.close()
