"""CORS on the TES routes: off unless origins are listed; preflights answered before authentication."""
import pytest
from webob import Request

from pulsar_lite.config import build_config
from pulsar_lite.errors import ConfigError
from pulsar_lite.tes import auth
from pulsar_lite.tes.cors import Cors

from .test_face import BEARER, tes_app

APP = "https://app.example.org"


def ask(app, method: str, path: str, origin: str | None = APP, **headers):
    if origin:
        headers["Origin"] = origin
    return Request.blank(path, method=method, headers=headers).get_response(app)


def test_without_origins_there_is_no_cors_at_all(engine_factory):
    app = tes_app(engine_factory, tes_token="tes-admin")
    answer = ask(app, "GET", "/ga4gh/tes/v1/tasks", Authorization="Bearer tes-admin")
    assert answer.status_int == 200 and not any(k.startswith("Access-Control") for k in answer.headers)
    assert ask(app, "OPTIONS", "/ga4gh/tes/v1/tasks").status_int == 405  # as any method a route does not take


def test_a_preflight_is_answered_before_authentication(engine_factory):
    app = tes_app(engine_factory, tes_token="tes-admin", tes_cors_origins=[APP, "http://localhost:3000"])
    answer = ask(app, "OPTIONS", "/ga4gh/tes/v1/tasks", **{"Access-Control-Request-Method": "POST",
                                                          "Access-Control-Request-Headers": "authorization,content-type"})
    assert answer.status_int == 204 and answer.body == b""
    assert answer.headers["Access-Control-Allow-Origin"] == APP
    assert answer.headers["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS"
    assert answer.headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
    assert answer.headers["Access-Control-Max-Age"] == "600" and answer.headers["Vary"] == "Origin"
    assert "Access-Control-Allow-Credentials" not in answer.headers
    cancel = ask(app, "OPTIONS", "/v1/tasks/tes-1:cancel", origin="http://localhost:3000")
    assert cancel.headers["Access-Control-Allow-Methods"] == "POST, OPTIONS"
    assert cancel.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert ask(app, "OPTIONS", "/ga4gh/tes/v1/service-info").headers["Access-Control-Allow-Methods"] == "GET, OPTIONS"
    missing = ask(app, "OPTIONS", "/ga4gh/tes/v1/nothing")
    assert missing.status_int == 404 and missing.headers["Access-Control-Allow-Origin"] == APP


def test_answers_carry_the_origin_errors_included_and_other_origins_get_none(engine_factory):
    app = tes_app(engine_factory, tes_token="tes-admin", tes_cors_origins=[APP + "/"])
    for answer, status in ((ask(app, "GET", "/ga4gh/tes/v1/tasks", **BEARER), 200),
                           (ask(app, "GET", "/ga4gh/tes/v1/tasks"), 401),
                           (ask(app, "GET", "/ga4gh/tes/v1/tasks/tes-0", **BEARER), 404),
                           (ask(app, "POST", "/ga4gh/tes/v1/tasks", **BEARER), 400)):
        assert answer.status_int == status and answer.headers["Access-Control-Allow-Origin"] == APP, status
    for origin in ("https://evil.example.org", "null", None, APP + ":8443", "http://app.example.org"):
        answer = ask(app, "OPTIONS", "/ga4gh/tes/v1/tasks", origin=origin)
        assert answer.status_int == 204 and "Access-Control-Allow-Origin" not in answer.headers, origin
        assert "Access-Control-Allow-Methods" not in answer.headers
        assert "Access-Control-Allow-Origin" not in ask(app, "GET", "/ga4gh/tes/v1/tasks", origin=origin,
                                                        **BEARER).headers
    # the Pulsar routes are not TES routes: no CORS there
    assert "Access-Control-Allow-Origin" not in ask(app, "GET", "/healthz").headers


def test_any_origin(engine_factory):
    app = tes_app(engine_factory, tes_cors_origins=["*"])
    answer = ask(app, "GET", "/ga4gh/tes/v1/service-info", origin="https://anywhere.example",
                 Authorization="Bearer t0ken")
    assert answer.status_int == 200 and answer.headers["Access-Control-Allow-Origin"] == "*" and "Vary" not in answer.headers


@pytest.mark.parametrize("origin", ["app.example.org", "https://app.example.org/tes", "ftp://x", "https://",
                                    "https://a.org?x=1"])
def test_a_wrong_origin_stops_the_start(origin, tmp_path):
    with pytest.raises(ConfigError, match="tes_cors_origins"):
        auth.check(build_config({"persistence_directory": str(tmp_path / "p"), "tes_cors_origins": [origin]}))


def test_origins_compare_without_case():
    cors = Cors(["HTTPS://App.Example.org"])
    assert cors.allowed("https://app.example.org") and not cors.allowed("https://app.example.org.evil")
