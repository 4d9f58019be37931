"""``pulsar-lite doctor`` on the TES face's credentials (the whole command, as a subprocess, is in
tests/integration/test_cli.py)."""
import os

from pulsar_lite.cli.doctor import FIX, OK, WARN, Findings, check_tes_access
from pulsar_lite.config import build_config
from pulsar_lite.tes import passwords


def findings(tmp_path, **app) -> list[tuple[str, str]]:
    found = Findings()
    check_tes_access(build_config({"persistence_directory": str(tmp_path / "p"), **app}), found)
    return found.items


def test_shared_token_is_a_warning(tmp_path):
    assert findings(tmp_path, private_token="x" * 32) == [
        (WARN, "TES: neither tes_token nor tes_users_file is set: the Pulsar private_token opens the TES routes "
               "too, with every task visible (docs/tes.md, 'Who may use it')")]
    assert findings(tmp_path, tes=False) == [] and findings(tmp_path, web=False) == []


def test_tes_token_strength_and_reuse(tmp_path):
    strong = "Vq3nT8xLp2Rz7KmWc5Yb9HdJf4Gs6Ne1"
    assert findings(tmp_path, tes_token=strong) == [(OK, "tes_token: 32 characters, about 160 bits")]
    assert findings(tmp_path, tes_token="changeme")[0][0] == FIX
    levels = findings(tmp_path, tes_token=strong, private_token=strong)
    assert (WARN, "TES: tes_token is the same as private_token: the Pulsar token opens TES as well") in levels


def test_users_file(tmp_path):
    users = tmp_path / "tes_users"
    assert findings(tmp_path, tes_users_file=str(users))[0][0] == FIX  # missing: the daemon would not start
    passwords.write_user(str(users), "alice", passwords.hash_password("alice-passphrase", iterations=1000))
    assert findings(tmp_path, tes_users_file=str(users)) == [(OK, f"TES: 1 user(s) in {users}")]
    os.chmod(users, 0o644)
    level, text = findings(tmp_path, tes_users_file=str(users))[0]
    assert level == WARN and "mode 0644" in text and "chmod 600" in text
    users.write_text("alice:plain\n")
    os.chmod(users, 0o600)
    level, text = findings(tmp_path, tes_users_file=str(users))[0]
    assert level == FIX and "line 1" in text


def test_a_wrong_cors_origin_is_to_fix(tmp_path):
    found = findings(tmp_path, tes_token="Vq3nT8xLp2Rz7KmWc5Yb9HdJf4Gs6Ne1", tes_cors_origins=["example.org"])
    assert found[-1][0] == FIX and "tes_cors_origins" in found[-1][1]
