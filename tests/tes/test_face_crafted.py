"""Found by review 4 (fixed): requests that make the TES face answer 500 (through the REST face's WSGI app)."""
import base64
import json

import pytest

from webob import Request

from pulsar_lite.tes import TesService, passwords
from pulsar_lite.web import RestApp


def tes_app(engine_factory, **app):
    engine = engine_factory(private_token="t0ken", tes_container_command="/bin/false", **app)
    engine.tes = TesService(engine, engine.config)
    return RestApp(engine)


def basic(name, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


def get(app, path, headers):
    return Request.blank(path, headers=headers).get_response(app)


def test_a_page_token_holding_a_huge_number_is_a_400_not_a_500(engine_factory):
    """read_page_token catches ValueError and TypeError; float() of a 400-digit JSON integer raises
    OverflowError: any caller, a Basic user included, gets a 500 and a traceback in the daemon's log."""
    app = tes_app(engine_factory, tes_token="adm")
    token = base64.urlsafe_b64encode(json.dumps([10 ** 400, "tes-x"]).encode()).decode().rstrip("=")
    response = get(app, f"/ga4gh/tes/v1/tasks?page_token={token}", {"Authorization": "Bearer adm"})
    assert response.status_int == 400, response.body


def test_a_users_file_hash_with_unicode_digits_is_refused_at_load(tmp_path):
    """check_hash accepted iterations that str.isdigit() accepts: fullwidth digits ('１０００') passed, int()
    read them, and the first request succeeded; the second, answered from the cache, compared the stored hash
    with hmac.compare_digest(str, str), which raises TypeError for non-ASCII strings: a 500 on every request
    of that user. Such a line is now refused when the file is read, with the line and the user."""
    from pulsar_lite.errors import ConfigError

    users = tmp_path / "tes_users"
    encoded = passwords.hash_password("carol-password", iterations=1000).replace("$1000$", "$１０００$")
    users.write_text(f"carol:{encoded}\n")
    with pytest.raises(ConfigError, match="line 1 \\(user carol\\): iterations"):
        passwords.read_users(str(users))
