"""What doctor says of TLS (pulsar_lite/tls.py), on certificates openssl makes here."""
import subprocess

from pulsar_lite import tls


def pem(tmp_path, days: str, name: str = "c") -> str:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", days, "-subj", "/CN=x",
                    "-keyout", f"{name}.key", "-out", f"{name}.crt"], cwd=tmp_path, check=True, capture_output=True)
    combined = tmp_path / f"{name}.pem"
    combined.write_text((tmp_path / f"{name}.crt").read_text() + (tmp_path / f"{name}.key").read_text())
    return str(combined)


def test_doctor_says_when_tls_is_off_on_a_public_address():
    assert tls.check(None, "0.0.0.0")[0][0] == "warn" and tls.check(None, "127.0.0.1")[0][0] == "ok"


def test_doctor_reads_expiry_and_key_match(tmp_path):
    level, text = tls.check(pem(tmp_path, "365"), "0.0.0.0")[0]
    assert level == "ok" and "valid until" in text
    assert tls.check(pem(tmp_path, "3", "soon"), "0.0.0.0")[0][0] == "warn"
    other = pem(tmp_path, "365", "other")
    mismatched = tmp_path / "mismatched.pem"
    mismatched.write_text((tmp_path / "c.crt").read_text() + (tmp_path / "other.key").read_text())
    level, text = tls.check(str(mismatched), "0.0.0.0")[0]
    assert level == "fail" and "matching private key" in text and other
    assert tls.check(str(tmp_path / "absent.pem"), "0.0.0.0")[0] == ("fail", f"ssl_pem {tmp_path}/absent.pem: no such file")
