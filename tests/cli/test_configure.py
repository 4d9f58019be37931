"""``pulsar-lite config``: what the written app.yml says about the TES face (the round trips through a real
daemon are in tests/integration/test_cli.py)."""
import pytest
import yaml

from pulsar_lite.cli import main
from pulsar_lite.config import load_config


def write(tmp_path, *extra):
    output = tmp_path / "etc" / "app.yml"
    code = main(["config", "--rest", "--staging", str(tmp_path / "staging"), "--output", str(output), *extra])
    return code, output


def test_tes_is_written_off_unless_asked(tmp_path, capsys):
    code, output = write(tmp_path)
    assert code == 0
    written = yaml.safe_load(output.read_text())
    assert written["tes"] is False and written["tes_allowed_images"] == [] and "tes_token" not in written
    config = load_config(str(output))
    assert config.tes is False and config.tes_allowed_images == []
    assert "GA4GH TES clients" not in capsys.readouterr().out


def test_tes_asked_for_gets_a_token_of_its_own_and_only_the_images_named(tmp_path, capsys):
    code, output = write(tmp_path, "--tes", "--tes-image", "quay.io/biocontainers/*", "--tes-image", "*")
    assert code == 0
    written = yaml.safe_load(output.read_text())
    assert written["tes"] is True and written["tes_allowed_images"] == ["quay.io/biocontainers/*", "*"]
    assert len(written["tes_token"]) >= 32 and written["tes_token"] != written["private_token"]
    assert f"#tes_users_file: {tmp_path / 'etc' / 'tes_users'}" in output.read_text()
    assert written["tes_token"] in capsys.readouterr().out
    assert load_config(str(output)).tes_token == written["tes_token"]
    code, output = write(tmp_path, "--tes", "--force")
    assert code == 0 and yaml.safe_load(output.read_text())["tes_allowed_images"] == []
    assert "no image is allowed yet" in capsys.readouterr().out


def test_tes_needs_the_rest_face(tmp_path, capsys):
    code = main(["config", "--mq", "amqp://guest:guest@localhost//", "--tes", "--staging", str(tmp_path / "s"),
                 "--output", str(tmp_path / "app.yml")])
    assert code == 2 and "--tes needs --rest" in capsys.readouterr().err
    code, _ = write(tmp_path, "--tes-image", "busybox")
    assert code == 2 and not (tmp_path / "etc" / "app.yml").exists()


@pytest.mark.parametrize("extra", [[], ["--tes"]])
def test_the_written_file_keeps_its_secrets_to_its_owner(tmp_path, extra):
    code, output = write(tmp_path, *extra)
    assert code == 0 and output.stat().st_mode & 0o777 == 0o600
