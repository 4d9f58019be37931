"""The TES users file: salted PBKDF2 hashes the standard library checks, lines that name what is wrong."""
import hashlib
import os

import pytest

from pulsar_lite.errors import ConfigError
from pulsar_lite.tes import passwords

FAST = passwords.MIN_ITERATIONS


def test_a_hash_checks_its_password_only_and_is_salted():
    encoded = passwords.hash_password("correct horse", iterations=FAST)
    algorithm, iterations, salt, key = encoded.split("$")
    assert algorithm == "pbkdf2_sha256" and int(iterations) == FAST
    assert passwords.verify_password("correct horse", encoded)
    assert not passwords.verify_password("correct hors", encoded)
    assert not passwords.verify_password("", encoded)
    assert encoded != passwords.hash_password("correct horse", iterations=FAST)  # a new salt each time
    assert "correct horse" not in encoded


def test_the_format_is_plain_pbkdf2_anyone_can_make():
    import base64

    salt = b"0123456789abcdef"
    key = hashlib.pbkdf2_hmac("sha256", "pässword".encode(), salt, 5000, 32)
    line = f"pbkdf2_sha256$5000${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"
    assert passwords.verify_password("pässword", line)
    assert passwords.hash_password("pässword", iterations=5000, salt=salt) == line


def test_the_default_costs_a_fraction_of_a_second():
    assert passwords.DEFAULT_ITERATIONS >= 600_000


@pytest.mark.parametrize("encoded", ["", "plain", "md5$1000$c2FsdHNhbHQ=$a2V5a2V5a2V5a2V5a2V5a2V5",
                                     "pbkdf2_sha256$10$c2FsdHNhbHQ=$a2V5a2V5a2V5a2V5a2V5a2V5",
                                     "pbkdf2_sha256$x$c2FsdHNhbHQ=$a2V5a2V5a2V5a2V5a2V5a2V5",
                                     "pbkdf2_sha256$1000$!!$a2V5a2V5a2V5a2V5a2V5a2V5",
                                     "pbkdf2_sha256$1000$c2FsdA==$a2V5"])
def test_a_broken_hash_never_verifies(encoded):
    with pytest.raises(ValueError):
        passwords.check_hash(encoded)
    assert not passwords.verify_password("anything", encoded)


def test_parse_users_skips_comments_and_names_the_wrong_line():
    good = passwords.hash_password("pw", iterations=FAST)
    assert passwords.parse_users(f"# users\n\nalice:{good}\n  bob@lab.org:{good}  \n") == {
        "alice": good, "bob@lab.org": good}
    for text, reason in [(f"alice {good}", "line 1: expected NAME:HASH"),
                         (f"# x\nal ice:{good}", "line 2: expected"),
                         (f":{good}", "line 1: expected"),
                         ("alice:plain", "line 1 (user alice): not a pbkdf2_sha256"),
                         (f"alice:{good}\nalice:{good}", "line 2: user alice is listed twice")]:
        with pytest.raises(ConfigError, match=reason.replace("(", r"\(").replace(")", r"\)")):
            passwords.parse_users(text)


def test_read_users_says_when_the_file_cannot_be_read(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        passwords.read_users(str(tmp_path / "missing"))
    (tmp_path / "latin").write_bytes(b"caf\xe9:x\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        passwords.read_users(str(tmp_path / "latin"))


def test_write_user_adds_replaces_and_removes_keeping_the_rest(tmp_path):
    path = str(tmp_path / "users")
    first, second = (passwords.hash_password(p, iterations=FAST) for p in ("one", "two"))
    assert passwords.write_user(path, "alice", first) is False
    assert os.stat(path).st_mode & 0o777 == 0o600
    with open(path, "a") as handle:
        handle.write("# the lab's robot\n")
    passwords.write_user(path, "robot", first)
    assert passwords.write_user(path, "alice", second) is True
    assert passwords.read_users(path) == {"robot": first, "alice": second}
    assert "# the lab's robot" in open(path).read()
    assert passwords.write_user(path, "robot", None) is True
    assert passwords.read_users(path) == {"alice": second}
    assert sorted(os.listdir(tmp_path)) == ["users"]  # no temporary file left


def test_write_user_leaves_a_broken_file_alone(tmp_path):
    path = tmp_path / "users"
    path.write_text("alice:not-a-hash\n")
    with pytest.raises(ConfigError):
        passwords.write_user(str(path), "bob", passwords.hash_password("pw", iterations=FAST))
    assert path.read_text() == "alice:not-a-hash\n"


def test_names_are_what_basic_can_carry():
    assert passwords.valid_name("alice") and passwords.valid_name("j.doe@example.org")
    for name in ("", "a:b", "a b", "-x", "é", "x" * 65):
        assert not passwords.valid_name(name)
