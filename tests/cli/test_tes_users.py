"""``pulsar-lite tes-user``: the users file written from the command line, read by the daemon's check."""
import io
import os

import pytest

from pulsar_lite.cli import main
from pulsar_lite.tes import passwords

FAST = ["--iterations", "1000"]


def run(monkeypatch, *args, stdin: str = ""):
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(["tes-user", *map(str, args)])


def test_add_reads_the_password_from_stdin_and_writes_only_its_salted_hash(monkeypatch, tmp_path, capsys):
    users = tmp_path / "etc" / "tes_users"
    assert run(monkeypatch, "add", "alice", "--file", users, *FAST, stdin="a long passphrase\n") == 0
    assert "added alice" in capsys.readouterr().out
    assert os.stat(users).st_mode & 0o777 == 0o600
    text = users.read_text()
    assert "a long passphrase" not in text and text.startswith("alice:pbkdf2_sha256$1000$")
    assert passwords.verify_password("a long passphrase", passwords.read_users(str(users))["alice"])
    assert run(monkeypatch, "add", "alice", "--file", users, *FAST, stdin="another passphrase\r\n") == 0
    assert "changed the password of alice" in capsys.readouterr().out
    assert passwords.verify_password("another passphrase", passwords.read_users(str(users))["alice"])
    assert run(monkeypatch, "add", "bob", "--file", users, stdin="bob's passphrase") == 0  # the default cost
    assert passwords.read_users(str(users))["bob"].startswith(f"pbkdf2_sha256${passwords.DEFAULT_ITERATIONS}$")
    capsys.readouterr()
    assert run(monkeypatch, "list", "--file", users) == 0
    assert capsys.readouterr().out.split() == ["alice", "bob"]
    assert run(monkeypatch, "remove", "alice", "--file", users) == 0
    assert list(passwords.read_users(str(users))) == ["bob"]
    assert run(monkeypatch, "remove", "alice", "--file", users) == 1
    assert "no user alice" in capsys.readouterr().err


def test_add_refuses_short_or_missing_passwords_and_bad_names(monkeypatch, tmp_path, capsys):
    users = tmp_path / "tes_users"
    assert run(monkeypatch, "add", "alice", "--file", users, stdin="short\n") == 1
    assert "at least 12" in capsys.readouterr().err
    assert run(monkeypatch, "add", "alice", "--file", users, stdin="") == 1
    assert run(monkeypatch, "add", "al:ice", "--file", users, stdin="a long passphrase\n") == 2
    assert run(monkeypatch, "add", "alice", "--file", users, "--iterations", "10", stdin="a long passphrase\n") == 2
    assert not users.exists()


def test_generate_prints_a_password_once_that_the_daemon_takes(monkeypatch, tmp_path, capsys):
    users = tmp_path / "tes_users"
    assert run(monkeypatch, "add", "robot", "--file", users, "--generate", *FAST) == 0
    password = capsys.readouterr().out.splitlines()[0].split(": ", 1)[1]
    assert len(password) >= 24 and password not in users.read_text()
    assert passwords.verify_password(password, passwords.read_users(str(users))["robot"])


def test_on_a_terminal_the_password_is_asked_twice(monkeypatch, tmp_path, capsys):
    users = tmp_path / "tes_users"
    answers = iter(["a long passphrase", "a long passphrase", "a long passphrase", "not the same one"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stdin", Terminal())
    assert main(["tes-user", "add", "alice", "--file", str(users), *FAST]) == 0
    assert main(["tes-user", "add", "bob", "--file", str(users), *FAST]) == 1
    assert "differ" in capsys.readouterr().err
    assert list(passwords.read_users(str(users))) == ["alice"]


def test_config_names_the_daemons_users_file(monkeypatch, tmp_path, capsys):
    app_yml = tmp_path / "app.yml"
    app_yml.write_text("tes_users_file: tes_users\n")  # relative to app.yml's directory
    assert run(monkeypatch, "add", "alice", "--config", app_yml, *FAST, stdin="a long passphrase\n") == 0
    assert list(passwords.read_users(str(tmp_path / "tes_users"))) == ["alice"]
    app_yml.write_text("tes: true\n")
    assert run(monkeypatch, "add", "alice", "--config", app_yml, stdin="a long passphrase\n") == 2
    assert "tes_users_file is not set" in capsys.readouterr().err


def test_a_broken_file_is_left_alone(monkeypatch, tmp_path, capsys):
    users = tmp_path / "tes_users"
    users.write_text("alice:plain\n")
    assert run(monkeypatch, "add", "bob", "--file", users, *FAST, stdin="a long passphrase\n") == 2
    assert "line 1" in capsys.readouterr().err and users.read_text() == "alice:plain\n"


@pytest.mark.parametrize("action", ["add", "remove", "list"])
def test_every_action_needs_a_file_or_a_config(action, monkeypatch):
    with pytest.raises(SystemExit) as usage:
        run(monkeypatch, action, *(["alice"] if action != "list" else []))
    assert usage.value.code == 2
