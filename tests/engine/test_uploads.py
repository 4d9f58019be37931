"""Pushed files are on disk before they count as uploaded when the store promises power-cut safety."""
import io

import pytest


@pytest.mark.parametrize("synchronous, syncs", [("full", 2), ("normal", 0)])
def test_uploads_follow_store_synchronous(engine_factory, synced_paths, tmp_path, synchronous, syncs):
    engine = engine_factory(store_synchronous=synchronous)
    engine.setup("_default_", "u1")
    body = b"input bytes\n" * 100
    target = engine.upload("_default_", "u1", "a.dat", "input", io.BytesIO(body), len(body))
    cached = tmp_path / "cached"
    cached.write_bytes(body)
    engine.upload("_default_", "u1", "b.dat", "input", None, None, cache_path=str(cached))
    assert open(target, "rb").read() == body
    # the uploads' temporary files under .partial (not the store's log)
    assert len([path for path in synced_paths if "/.partial/" in path]) == syncs


def test_upload_onto_a_directory_is_refused_and_leaves_nothing(engine_factory, tmp_path):
    from pulsar_lite.errors import BadRequest
    engine = engine_factory()
    engine.setup("_default_", "d1")
    (tmp_path / "staging" / "d1" / "working" / "sub").mkdir()
    for cache_path in (None, str(tmp_path / "cached")):
        (tmp_path / "cached").write_bytes(b"x")
        with pytest.raises(BadRequest, match="is a directory"):
            engine.upload("_default_", "d1", "sub", "workdir", io.BytesIO(b"x"), 1, cache_path=cache_path)
    assert (tmp_path / "staging" / "d1" / "working" / "sub").is_dir()
    assert list((tmp_path / "staging" / ".partial").iterdir()) == []
