"""What a task may ask of the daemon, refused at create with a 400: URL schemes it cannot fetch or send."""
import pytest

from pulsar_lite.errors import BadRequest
from pulsar_lite.tes import policy
from pulsar_lite.tes.protocol import read_task

RUN = [{"image": "busybox", "command": ["true"]}]


def task(**extra):
    return read_task({"executors": RUN, **extra})


@pytest.mark.parametrize("url", ["http://h/a", "HTTPS://h/a", "ftp://h/a", "ftps://h/a", "file:///data/a", "/data/a"])
def test_known_schemes_pass(url):
    policy.check_urls(task(inputs=[{"url": url, "path": "/in/a"}], outputs=[{"url": url, "path": "/out/a"}]),
                      ["/data"])


@pytest.mark.parametrize("url, reason", [
    ("s3://bucket/key", "scheme 's3' is not one this server can"),
    ("gs://bucket/key", "scheme 'gs'"),
    ("drs://host/id", "scheme 'drs'"),
    ("sftp://host/a", "scheme 'sftp'"),
    ("relative/path", "no scheme"),
    ("", "no scheme"),
])
def test_other_schemes_are_a_400_naming_the_url(url, reason):
    for document, kind in (({"inputs": [{"url": url, "path": "/in/a"}]}, "inputs[0].url"),
                           ({"outputs": [{"url": url, "path": "/out/a"}]}, "outputs[0].url")):
        try:
            checked = task(**document)
        except BadRequest:  # an empty URL is the schema's refusal already
            assert url == ""
            continue
        with pytest.raises(BadRequest) as refused:
            policy.check_urls(checked, ["/data"])
        assert kind in str(refused.value) and reason in str(refused.value)
        assert "http, https, file, ftp, ftps" in str(refused.value)


def test_file_urls_without_roots_are_a_400():
    for url in ("file:///data/a", "/data/a"):
        with pytest.raises(BadRequest, match="no tes_file_roots"):
            policy.check_urls(task(outputs=[{"url": url, "path": "/out/a"}]), [])
    policy.check_urls(task(inputs=[{"content": "x", "path": "/in/a"}]), [])  # inline content has no URL


def test_images_follow_the_allowlist():
    assert policy.image_allowed("busybox", ["*"]) and policy.image_allowed("busybox", ["any"])
    assert policy.image_allowed("quay.io/biocontainers/samtools:1.17", ["quay.io/biocontainers/*"])
    assert not policy.image_allowed("evil/miner", ["quay.io/biocontainers/*"])
    assert not policy.image_allowed("busybox", [])


def test_over_http_a_refused_url_or_strict_parameter_is_a_400_and_no_task(engine_factory):
    from webob import Request

    from .test_face import tes_app
    app = tes_app(engine_factory)
    for document in ({"executors": RUN, "inputs": [{"url": "s3://bucket/key", "path": "/in/a"}]},
                     {"executors": RUN, "resources": {"backendParameters": {"gpu": "1"},
                                                      "backendParametersStrict": True}}):
        request = Request.blank("/ga4gh/tes/v1/tasks", method="POST", headers={"Authorization": "Bearer t0ken"})
        request.json_body = document
        answer = request.get_response(app)
        assert answer.status_int == 400 and answer.json["status_code"] == 400, answer.body
    listed = Request.blank("/ga4gh/tes/v1/tasks", headers={"Authorization": "Bearer t0ken"}).get_response(app)
    assert listed.json == {"tasks": []}
