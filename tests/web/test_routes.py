"""Route matching: the reference's templates, with the rules the regular expressions used to have."""
import pytest

from pulsar_lite import wire
from pulsar_lite.web.routes import MethodNotAllowed, NoRoute, Router


@pytest.fixture
def router():
    routes = [(template, method, name) for name, method, template in wire.ROUTES]
    routes += [(wire.MANAGER_PREFIX + template, method, name) for name, method, template in wire.ROUTES
               if name != "healthz"]
    return Router(routes)


@pytest.mark.parametrize("method, path, name, args", [
    ("POST", "/jobs", "setup", {}),
    ("DELETE", "/jobs/a.b-c_1", "clean", {"job_id": "a.b-c_1"}),
    ("POST", "/jobs/7/submit", "submit", {"job_id": "7"}),
    ("GET", "/jobs/7/status", "status", {"job_id": "7"}),
    ("POST", "/jobs/7/status", "status", {"job_id": "7"}),  # any method
    ("POST", "/jobs/7/files", "upload_file", {"job_id": "7"}),
    ("GET", "/jobs/7/files", "download_output", {"job_id": "7"}),
    ("GET", "/jobs/7/files/path", "path", {"job_id": "7"}),
    ("GET", "/jobs/files/files/path", "path", {"job_id": "files"}),
    ("PUT", "/cache", "cache_required", {}),
    ("POST", "/cache", "cache_insert", {}),
    ("GET", "/cache/status", "file_available", {}),
    ("GET", "/objects/o/size", "object_store_size", {"object_id": "o"}),
    ("GET", "/healthz", "healthz", {}),
    ("PUT", "/managers/m1/jobs/7/cancel", "cancel", {"manager_name": "m1", "job_id": "7"}),
    ("POST", "/managers/m1/jobs", "setup", {"manager_name": "m1"}),
])
def test_matches(router, method, path, name, args):
    assert router.match(method, path) == (name, args)


@pytest.mark.parametrize("path", ["", "/", "/nope", "/jobs/", "/jobs//status", "//jobs", "/jobs/7/status/",
                                  "jobs/7/status", "/managers/m1/healthz", "/managers//jobs", "/jobs/7/x/status"])
def test_no_route(router, path):
    with pytest.raises(NoRoute):
        router.match("GET", path)


@pytest.mark.parametrize("method, path", [("GET", "/jobs"), ("GET", "/jobs/7/cancel"), ("GET", "/cache"),
                                          ("PUT", "/jobs/7/files"), ("POST", "/managers/m/jobs/7")])
def test_method_not_allowed(router, method, path):
    with pytest.raises(MethodNotAllowed):
        router.match(method, path)


def test_first_listed_route_wins():
    router = Router([("/a/{x}", "GET", "first"), ("/a/{y}", None, "second"), ("/{z}/b", None, "third")])
    assert router.match("GET", "/a/1") == ("first", {"x": "1"})
    assert router.match("PUT", "/a/1") == ("second", {"y": "1"})
    assert router.match("PUT", "/a/b") == ("second", {"y": "b"})
    assert router.match("PUT", "/c/b") == ("third", {"z": "c"})
