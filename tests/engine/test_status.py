from pulsar_lite.engine.status import read_stream, trim_stream


def test_trim_keeps_head_and_tail():
    data = b"H" * 100 + b"T" * 100
    trimmed = trim_stream(data, 50)
    assert len(trimmed) == 50
    assert trimmed.startswith(b"H") and trimmed.endswith(b"T") and b"\n..\n" in trimmed
    assert trim_stream(b"short", 50) == b"short"


def test_read_stream_respects_maximum_then_cap(tmp_path):
    path = tmp_path / "s"
    path.write_bytes(b"a" * 1000 + b"END")
    assert read_stream(str(path), maximum=100, cap=None).endswith("END")
    assert len(read_stream(str(path), maximum=100, cap=None).encode()) <= 104
    assert read_stream(str(tmp_path / "missing"), 100) == ""
