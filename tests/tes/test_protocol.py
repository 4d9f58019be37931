"""The TES task document as pulsar_lite reads it, and the query parameters."""
import pytest

from pulsar_lite.errors import BadRequest
from pulsar_lite.tes import protocol


def minimal(**extra):
    return {"executors": [{"image": "busybox", "command": ["true"]}], **extra}


def test_defaults_are_filled_in():
    task = protocol.read_task(minimal(inputs=[{"path": "/in/a", "content": "x"}],
                                      outputs=[{"path": "/out/b", "url": "http://h/b"}]))
    assert task["inputs"][0]["type"] == "FILE" and task["inputs"][0]["url"] is None
    assert task["outputs"][0]["type"] == "FILE" and task["outputs"][0]["path_prefix"] is None
    assert task["executors"][0]["ignore_error"] is False and task["executors"][0]["env"] == {}
    assert task["resources"] == {}


@pytest.mark.parametrize("document, reason", [
    ({}, "executors is required"),
    ({"executors": []}, "executors is required"),
    (minimal(executors=[{"command": ["x"]}]), "executors[0].image is required"),
    (minimal(executors=[{"image": "--privileged", "command": ["x"]}]), "not an image name"),
    (minimal(executors=[{"image": "b", "command": []}]), "command must be a non-empty array"),
    (minimal(inputs=[{"path": "relative", "content": "x"}]), "must be an absolute path"),
    (minimal(inputs=[{"path": "/a/../../etc/passwd", "content": "x"}]), "must not contain '..'"),
    (minimal(inputs=[{"path": "/a"}]), "inputs[0].url is required"),
    (minimal(outputs=[{"path": "/out/*.txt", "url": "http://h/d"}]), "path_prefix is required"),
    (minimal(outputs=[{"path": "/out/*.txt", "path_prefix": "out", "url": "http://h/d"}]), "must be an absolute path"),
    (minimal(outputs=[{"path": "/out/*.txt", "path_prefix": "/data", "url": "http://h/d"}]), "must be a prefix of its path"),
    (minimal(outputs=[{"path": "/out/*.txt", "path_prefix": "/ou", "url": "http://h/d"}]), "must be a prefix of its path"),
    (minimal(inputs=[{"path": "/a", "content": "x", "type": "LINK"}]), "FILE or DIRECTORY"),
    (minimal(resources={"cpu_cores": 1.5}), "cpu_cores must be a positive integer"),
    (minimal(resources={"ram_gb": -1}), "ram_gb must be a positive number"),
    (minimal(tags={"a": 1}), "tags must map strings to strings"),
    ([], "the task must be a JSON object"),
])
def test_bad_documents_are_refused_with_one_line(document, reason):
    with pytest.raises(BadRequest) as refused:
        protocol.read_task(document)
    assert reason in str(refused.value) and "\n" not in str(refused.value)


def test_unknown_fields_are_ignored():
    task = protocol.read_task(minimal(project="old-tes-field"))
    assert "project" not in task


def test_backend_parameter_keys_are_case_insensitive():
    task = protocol.read_task(minimal(resources={"backend_parameters": {"Manager": "slurm"}}))
    assert task["resources"]["backend_parameters"] == {"manager": "slurm"}


def test_tags_zip_and_match_as_the_spec_says():
    wanted = protocol.read_tag_filter(["foo", "baz"], ["bar"])
    assert wanted == {"foo": "bar", "baz": ""}
    assert protocol.tags_match({"foo": "bar"}, {"foo": "bar", "baz": "bat"})
    assert not protocol.tags_match({"foo": "bar"}, {"foo": "bat"})
    assert protocol.tags_match({"foo": ""}, {"foo": "bar"})
    assert not protocol.tags_match({"foo": ""}, {})
    assert not protocol.tags_match({"foo": "bar", "baz": "bat"}, {"foo": "bar"})


def test_views_page_sizes_and_tokens():
    assert protocol.read_view(None) == "MINIMAL" and protocol.read_view("full") == "FULL"
    with pytest.raises(BadRequest):
        protocol.read_view("EVERYTHING")
    assert protocol.read_page_size(None) == 256
    with pytest.raises(BadRequest):
        protocol.read_page_size("2048")
    token = protocol.page_token(1764838000.25, "tes-abc")
    assert protocol.read_page_token(token) == (1764838000.25, "tes-abc")
    with pytest.raises(BadRequest, match="page_token"):
        protocol.read_page_token("not-a-token")


def test_times_are_rfc3339():
    assert protocol.rfc3339(0) == "1970-01-01T00:00:00.000Z"
    assert protocol.rfc3339(None) is None


def test_a_path_prefix_is_a_directory_on_the_way_to_its_path():
    for prefix in ("/", "/out", "/out/", "/out/many"):
        task = protocol.read_task(minimal(outputs=[{"path": "/out/many/*.txt", "path_prefix": prefix, "url": "h"}]))
        assert task["outputs"][0]["path_prefix"] == prefix.rstrip("/") or prefix == "/"


def test_camel_case_resource_names_are_read_as_the_schemas():
    task = protocol.read_task(minimal(resources={"cpuCores": 4, "ramGb": 8.5, "diskGb": 100, "preemptible": True,
                                                 "zones": ["eu-1"], "backendParameters": {"Queue": "long"},
                                                 "backendParametersStrict": True}))
    assert task["resources"] == {"cpu_cores": 4, "ram_gb": 8.5, "disk_gb": 100, "preemptible": True,
                                 "zones": ["eu-1"], "backend_parameters": {"queue": "long"},
                                 "backend_parameters_strict": True}
    both = protocol.read_task(minimal(resources={"cpuCores": 2, "cpu_cores": 2}))["resources"]
    assert both["cpu_cores"] == 2 and "cpuCores" not in both
    for resources in ({"cpuCores": 1.5}, {"ramGb": 0}, {"diskGb": "big"}):  # checked as the schema's names are
        with pytest.raises(BadRequest, match="must be a positive"):
            protocol.read_task(minimal(resources=resources))
    with pytest.raises(BadRequest, match="resources.cpuCores and resources.cpu_cores .* give one"):
        protocol.read_task(minimal(resources={"cpuCores": 2, "cpu_cores": 4}))
