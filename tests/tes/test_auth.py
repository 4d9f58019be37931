"""Who a TES request comes from: tes_token, tes_users_file, or (neither set) the Pulsar routes' own check."""
import base64
import logging
import os
import time
from types import SimpleNamespace

import pytest

from pulsar_lite.config import build_config
from pulsar_lite.errors import ConfigError
from pulsar_lite.tes import auth, passwords

FAST = passwords.MIN_ITERATIONS


def request(authorization: str | None = None):
    return SimpleNamespace(environ={"HTTP_AUTHORIZATION": authorization} if authorization is not None else {})


def basic(name: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()


@pytest.fixture
def users_file(tmp_path):
    path = tmp_path / "tes_users"
    passwords.write_user(str(path), "alice", passwords.hash_password("alice-pw", iterations=FAST))
    passwords.write_user(str(path), "bob", passwords.hash_password("bob:pw é", iterations=FAST))
    return path


def make(tmp_path, pulsar=None, **app):
    config = build_config({"persistence_directory": str(tmp_path / "p"), **app})
    return auth.TesAuth(config, pulsar)


def test_without_tes_credentials_the_pulsar_check_decides_and_the_start_warns(tmp_path, caplog):
    tes_auth = make(tmp_path, pulsar=lambda r: r.environ.get("HTTP_AUTHORIZATION") == "Bearer p", private_token="p")
    assert tes_auth.shared
    assert tes_auth.caller(request("Bearer p")) == auth.ADMIN
    assert tes_auth.caller(request("Bearer other")) is None
    with caplog.at_level(logging.WARNING, logger="pulsar_lite.tes.auth"):
        tes_auth.announce()
    assert "private_token opens the TES routes too" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pulsar_lite.tes.auth"):
        make(tmp_path).announce()
    assert "anyone who can reach this port" in caplog.text


def test_tes_token_is_an_administrator_and_the_pulsar_token_opens_nothing(tmp_path, caplog):
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjd2wtdGVzIn0.c2lnbmF0dXJl-_x="  # cwl-tes sends --token as Bearer
    tes_auth = make(tmp_path, pulsar=lambda r: True, private_token="p", tes_token=jwt)
    assert not tes_auth.shared
    assert tes_auth.caller(request(f"Bearer {jwt}")) == auth.ADMIN
    assert tes_auth.caller(request(f"bearer   {jwt} ")) == auth.ADMIN
    for wrong in ("Bearer p", f"Bearer {jwt}x", f"Bearer {jwt[:-1]}", "Bearer", "", None, f"Token {jwt}",
                  basic("alice", "alice-pw"), "Bearer \udcff"):
        assert tes_auth.caller(request(wrong)) is None, wrong
    with caplog.at_level(logging.INFO, logger="pulsar_lite.tes.auth"):
        tes_auth.announce()
    assert "does not open the TES routes" in caplog.text and "WARNING" not in caplog.text


def test_a_tes_token_equal_to_the_pulsar_token_is_warned_of(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="pulsar_lite.tes.auth"):
        make(tmp_path, private_token="same", tes_token="same").announce()
    assert "same as private_token" in caplog.text


def test_basic_users_are_themselves(tmp_path, users_file):
    tes_auth = make(tmp_path, pulsar=lambda r: True, private_token="p", tes_users_file=str(users_file))
    assert tes_auth.caller(request(basic("alice", "alice-pw"))) == auth.Caller("alice")
    assert tes_auth.caller(request(basic("bob", "bob:pw é"))) == auth.Caller("bob")  # a ':' in the password
    for wrong in (basic("alice", "bob:pw é"), basic("alice", "alice-pw "), basic("carol", "alice-pw"),
                  basic("", "alice-pw"), "Basic bm9jb2xvbg==", "Basic !!!", "Basic " + base64.b64encode(
                      b"alice:\xff").decode(), "Bearer p", None):
        assert tes_auth.caller(request(wrong)) is None, wrong
    assert [value for _, value in tes_auth.challenges()] == ['Basic realm="pulsar_lite TES", charset="UTF-8"']


def test_a_verified_password_is_remembered_briefly_by_a_keyed_hash_never_as_itself(tmp_path, users_file):
    passwords.write_user(str(users_file), "slow", passwords.hash_password("slow-pw"))  # the default cost
    tes_auth = make(tmp_path, tes_users_file=str(users_file))
    started = time.perf_counter()
    assert tes_auth.caller(request(basic("slow", "slow-pw"))) == auth.Caller("slow")
    first = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(100):
        assert tes_auth.caller(request(basic("slow", "slow-pw"))) == auth.Caller("slow")
    cached = (time.perf_counter() - started) / 100
    assert first > 0.02 and cached < first / 20, (first, cached)  # about 0.15 s, then tens of µs
    remembered = repr(tes_auth._cache) + repr(vars(tes_auth))
    assert "slow-pw" not in remembered and base64.b64encode(b"slow:slow-pw").decode() not in remembered
    assert tes_auth.caller(request(basic("slow", "wrong"))) is None  # the cache never answers another password
    auth_cache = dict(tes_auth._cache)
    (key, (expires, name, encoded)), = auth_cache.items()
    tes_auth._cache[key] = (time.monotonic() - 1, name, encoded)  # expired: checked again
    assert tes_auth.caller(request(basic("slow", "slow-pw"))) == auth.Caller("slow")
    assert tes_auth._cache[key][0] > time.monotonic()


def test_the_file_is_read_again_when_it_changes_and_a_removed_user_is_out_at_once(tmp_path, users_file):
    tes_auth = make(tmp_path, tes_token="t", tes_users_file=str(users_file))
    assert tes_auth.caller(request(basic("alice", "alice-pw"))) == auth.Caller("alice")  # now cached
    passwords.write_user(str(users_file), "carol", passwords.hash_password("carol-pw", iterations=FAST))
    assert tes_auth.caller(request(basic("carol", "carol-pw"))) == auth.Caller("carol")
    passwords.write_user(str(users_file), "alice", None)
    assert tes_auth.caller(request(basic("alice", "alice-pw"))) is None  # cached, yet gone from the file
    passwords.write_user(str(users_file), "carol", passwords.hash_password("new", iterations=FAST))
    assert tes_auth.caller(request(basic("carol", "carol-pw"))) is None  # the old password, cached: no more
    assert tes_auth.caller(request(basic("carol", "new"))) == auth.Caller("carol")


def test_a_broken_file_lets_no_basic_user_in_until_fixed_and_the_token_still_works(tmp_path, users_file, caplog):
    tes_auth = make(tmp_path, tes_token="t", tes_users_file=str(users_file))
    text = users_file.read_text()
    users_file.write_text(text + "oops\n")
    os.utime(users_file, ns=(time.time_ns(), time.time_ns() + 10**9))
    with caplog.at_level(logging.ERROR, logger="pulsar_lite.tes.auth"):
        assert tes_auth.caller(request(basic("bob", "bob:pw é"))) is None
    assert "line 3" in caplog.text
    assert tes_auth.caller(request("Bearer t")) == auth.ADMIN
    users_file.unlink()
    assert tes_auth.caller(request(basic("bob", "bob:pw é"))) is None
    users_file.write_text(text)
    assert tes_auth.caller(request(basic("bob", "bob:pw é"))) == auth.Caller("bob")


def test_a_wrong_users_file_stops_the_start(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        auth.check(build_config({"persistence_directory": str(tmp_path / "p"),
                                 "tes_users_file": str(tmp_path / "missing")}))
    (tmp_path / "users").write_text("alice:plain\n")
    with pytest.raises(ConfigError, match="line 1"):
        auth.check(build_config({"persistence_directory": str(tmp_path / "p"), "tes_users_file": "users"},
                                base_dir=str(tmp_path)))  # relative to the configuration's directory
    auth.check(build_config({"persistence_directory": str(tmp_path / "p"), "tes": False,
                             "tes_users_file": str(tmp_path / "missing")}))  # TES off: not read
