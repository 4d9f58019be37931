"""What a task may ask of the daemon, refused at create with a 400: URL schemes it cannot fetch or send."""
import pytest

from pulsar_lite.errors import BadRequest
from pulsar_lite.tes import policy, runtime
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
        assert "http, https, ftp, ftps, file" in str(refused.value)


def test_a_refusal_never_echoes_a_password_and_a_broken_url_is_a_400():
    with pytest.raises(BadRequest) as refused:
        policy.check_urls(task(inputs=[{"url": "s3://AKIA:s3cret-key@bucket/k", "path": "/in/a"}]), ["/data"])
    assert "s3cret-key" not in str(refused.value) and "AKIA:***@bucket" in str(refused.value)
    with pytest.raises(BadRequest) as refused:
        policy.check_urls(task(outputs=[{"url": "/data/o", "path": "/out/a"}, {"url": "http://[::1/x", "path": "/o/b"}]),
                          ["/data"])
    assert "outputs[1].url is not a URL: Invalid IPv6 URL" in str(refused.value)


def test_file_urls_without_roots_are_a_400():
    for url in ("file:///data/a", "/data/a"):
        with pytest.raises(BadRequest, match="no tes_file_roots"):
            policy.check_urls(task(outputs=[{"url": url, "path": "/out/a"}]), [])
    policy.check_urls(task(inputs=[{"content": "x", "path": "/in/a"}]), [])  # inline content has no URL


@pytest.mark.parametrize("runtime_name", ["podman", "docker", "apptainer", "singularity"])
def test_images_follow_the_allowlist(runtime_name):
    assert policy.image_allowed("busybox", ["*"], runtime_name)
    assert policy.image_allowed("busybox", ["any"], runtime_name)
    assert policy.image_allowed("quay.io/biocontainers/samtools:1.17", ["quay.io/biocontainers/*"], runtime_name)
    assert not policy.image_allowed("evil/miner", ["quay.io/biocontainers/*"], runtime_name)
    assert not policy.image_allowed("busybox", [], runtime_name)


LOCAL = ["instance://running", "/srv/images/tool.sif", "tool.sif", "./tool.sif", "../x/tool.sif", "~/tool.sif",
         "/srv/images/sandbox-dir", "docker-daemon://busybox:latest", "docker-archive:///tmp/x.tar",
         "oci-archive:///tmp/x.tar", "https://example.org/tool.sif", "shub://old/hub", "INSTANCE://x"]
REGISTRY = ["busybox", "quay.io/biocontainers/samtools:1.17", "docker://busybox", "DOCKER://busybox",
            "oras://ghcr.io/org/tool:1", "library://sylabs/default/alpine"]


@pytest.mark.parametrize("runtime_name", ["apptainer", "singularity"])
def test_apptainer_images_from_the_host_need_a_pattern_naming_them(runtime_name):
    for image in LOCAL:
        assert not runtime.registry_image(image), image
        for patterns in (["*"], ["any"], ["**"], ["*", "docker://*"]):
            assert not policy.image_allowed(image, patterns, runtime_name), (image, patterns)
            with pytest.raises(BadRequest, match="not a registry's image .* names it explicitly"):
                policy.check_images(task(executors=[{"image": image, "command": ["true"]}]), patterns, runtime_name)
    for image in REGISTRY:
        assert runtime.registry_image(image), image
        assert policy.image_allowed(image, ["*"], runtime_name)
    # the operator names them: a pattern other than '*'
    assert policy.image_allowed("/srv/images/tool.sif", ["*", "/srv/images/*.sif"], runtime_name)
    assert policy.image_allowed("instance://running", ["instance://running"], runtime_name)
    assert not policy.image_allowed("/tmp/evil.sif", ["/srv/images/*.sif"], runtime_name)


@pytest.mark.parametrize("runtime_name", ["apptainer", "singularity"])
def test_apptainer_runs_a_registry_name_from_docker_and_the_hosts_images_as_they_are(runtime_name):
    for image, argument in (("busybox", "docker://busybox"), ("oras://ghcr.io/o/t:1", "oras://ghcr.io/o/t:1"),
                            ("/srv/images/tool.sif", "/srv/images/tool.sif"), ("/srv/sandbox", "/srv/sandbox"),
                            ("instance://running", "instance://running")):
        t = task(executors=[{"image": image, "command": ["true"]}])
        argv = runtime.run_command(runtime_name, runtime_name, "tes-1", 0, t["executors"][0], t, "/root", {})
        assert argv[-2:] == [argument, "true"], image


def test_other_runtimes_take_any_image_under_star():
    for image in LOCAL[:6]:
        assert policy.image_allowed(image, ["*"], "podman")


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


def test_a_service_under_apptainer_refuses_the_hosts_images_at_create_unless_named(engine_factory):
    from pulsar_lite.tes import TesService

    engine = engine_factory(tes_container_runtime="apptainer", tes_container_command="/bin/false")
    tes = TesService(engine, engine.config)  # the default tes_allowed_images: ['*']
    for image in ("instance://running", "/srv/images/tool.sif"):
        with pytest.raises(BadRequest, match="names it explicitly"):
            tes.create({"executors": [{"image": image, "command": ["true"]}]})
    assert tes.create({"executors": [{"image": "docker://busybox", "command": ["true"]}]})
    engine.config.values["tes_allowed_images"] = ["*", "/srv/images/*.sif"]
    named = TesService(engine, engine.config)
    assert named.create({"executors": [{"image": "/srv/images/tool.sif", "command": ["true"]}]})
