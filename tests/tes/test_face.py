"""The TES face in-process, through the REST face's WSGI app: errors before and around authentication."""
from webob import Request

from pulsar_lite.tes import TesService
from pulsar_lite.web import RestApp


def tes_app(engine_factory):
    engine = engine_factory(private_token="t0ken", tes_container_command="/bin/false")
    engine.tes = TesService(engine, engine.config)
    return RestApp(engine)


def test_a_query_string_that_is_not_utf8_is_a_bad_request_not_an_internal_error(engine_factory):
    app = tes_app(engine_factory)
    for path in ("/ga4gh/tes/v1/tasks?private_token=%ff", "/ga4gh/tes/v1/service-info?view=%ff",
                 "/ga4gh/tes/v1/tasks?view=%c3%28"):
        response = Request.blank(path).get_response(app)
        assert response.status_int == 400, (path, response.body)
        assert response.json == {"message": "the query string is not valid UTF-8", "status_code": 400}
    # and the face goes on answering
    ok = Request.blank("/ga4gh/tes/v1/tasks", headers={"Authorization": "Bearer t0ken"}).get_response(app)
    assert ok.status_int == 200 and ok.json["tasks"] == []
    assert Request.blank("/ga4gh/tes/v1/tasks?private_token=wrong").get_response(app).status_int == 401
