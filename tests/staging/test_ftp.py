"""FTP and FTPS transfers against a real vsftpd (scripts/ci/ftp-up.sh): files, directory trees, uploads that
make their directories, resume, explicit and implicit TLS, the address rule; and the LIST parser on the
formats servers answer in."""
import os

import pytest

from pulsar_lite.netpolicy import AddressPolicy
from pulsar_lite.staging import ftp, transfer
from pulsar_lite.staging.remote import Remote

from .conftest import policy

LOOPBACK = AddressPolicy(["127.0.0.1"])  # the test server is on the loopback, refused by default


def test_a_file_and_a_directory_tree_come_in_byte_identical(ftp_area, tmp_path):
    data = os.urandom(300_000)
    ftp_area.put("in/a b#1.bin", data)
    ftp_area.put("in/sub/deeper/c.txt", b"c\n")
    ftp_area.put("in/sub/empty.txt", b"")
    (ftp_area.path / "in" / "nothing").mkdir()
    os.symlink("a b#1.bin", ftp_area.path / "in" / "link.bin")
    stats = ftp.download(f"{ftp_area.url}/in/a%20b%231.bin", str(tmp_path / "one"), retry=policy(), root=str(tmp_path))
    assert (tmp_path / "one").read_bytes() == data and stats.bytes == len(data)
    files, size = ftp.download_tree(f"{ftp_area.url}/in/", str(tmp_path / "tree"), retry=policy(), root=str(tmp_path))
    assert (files, size) == (4, 2 * len(data) + 2)
    tree = tmp_path / "tree"
    assert (tree / "a b#1.bin").read_bytes() == data and (tree / "link.bin").read_bytes() == data
    assert (tree / "sub" / "deeper" / "c.txt").read_bytes() == b"c\n"
    assert (tree / "sub" / "empty.txt").stat().st_size == 0
    assert (tree / "nothing").is_dir() and not list(tree.rglob("*.part"))


def test_an_interrupted_download_resumes_and_a_partial_file_longer_than_the_servers_starts_over(ftp_area, tmp_path):
    data = os.urandom(200_000)
    ftp_area.put("data.bin", data)
    (tmp_path / "got.part").write_bytes(data[:50_000])  # what an earlier attempt had
    stats = ftp.download(f"{ftp_area.url}/data.bin", str(tmp_path / "got"), retry=policy(), root=str(tmp_path))
    assert (tmp_path / "got").read_bytes() == data
    assert stats.resumed_from == 50_000 and stats.bytes == 150_000
    (tmp_path / "again.part").write_bytes(os.urandom(250_000))  # not from this file: longer than it
    ftp.download(f"{ftp_area.url}/data.bin", str(tmp_path / "again"), retry=policy(), root=str(tmp_path))
    assert (tmp_path / "again").read_bytes() == data


def test_an_upload_makes_the_directories_of_its_path(ftp_area, tmp_path):
    source = tmp_path / "result.bin"
    source.write_bytes(os.urandom(100_000))
    ftp.upload(f"{ftp_area.url}/out/new/deeper/result%20one.bin", str(source), retry=policy())
    assert (ftp_area.path / "out" / "new" / "deeper" / "result one.bin").read_bytes() == source.read_bytes()
    source.write_bytes(b"replaced")  # a second upload (a retry) replaces the file
    ftp.upload(f"{ftp_area.url}/out/new/deeper/result%20one.bin", str(source), retry=policy())
    assert (ftp_area.path / "out" / "new" / "deeper" / "result one.bin").read_bytes() == b"replaced"


def test_what_cannot_succeed_fails_at_once_without_the_password(ftp_area, tmp_path, sleeps):
    ftp_area.put("there.txt", b"x")
    wrong = ftp_area.url.replace(f":{ftp_area.password}@", ":not-the-password-31@")
    for url, what in [(f"{ftp_area.url}/missing.txt", "does not exist"), (f"{wrong}/there.txt", "530"),
                      (f"{ftp_area.url}/nowhere/", "550")]:
        with pytest.raises(transfer.TransferError, match=what) as info:
            if url.endswith("/"):
                ftp.download_tree(url, str(tmp_path / "t"), retry=policy(), root=str(tmp_path))
            else:
                ftp.download(url, str(tmp_path / "x"), retry=policy(), root=str(tmp_path))
        assert info.value.permanent and ftp_area.password not in str(info.value)
        assert "not-the-password-31" not in str(info.value) and f"{ftp_area.user}:***@127.0.0.1" in str(info.value)
    assert sleeps == []


def test_a_dropped_connection_is_retried(ftp_area, tmp_path, sleeps):
    closed = ftp_area.url.replace(f":{ftp_area.port}/", ":1/")
    with pytest.raises(transfer.TransferError) as info:
        ftp.download(f"{closed}/x", str(tmp_path / "x"), retry=policy(2), root=str(tmp_path))
    assert not info.value.permanent and len(sleeps) == 2


def test_explicit_and_implicit_tls(ftp_area, tmp_path):
    ftp_area.put("secret.txt", b"over TLS\n")
    required = Remote(ca_bundle=ftp_area.ca, ftp_tls="required")
    ftp.download(f"{ftp_area.url}/secret.txt", str(tmp_path / "explicit"), retry=policy(), root=str(tmp_path),
                 remote=required)
    ftp.download(f"{ftp_area.ftps_url}/secret.txt", str(tmp_path / "implicit"), retry=policy(), root=str(tmp_path),
                 remote=Remote(ca_bundle=ftp_area.ca))
    ftp.upload(f"{ftp_area.url}/up/secret.txt", str(tmp_path / "explicit"), retry=policy(), remote=required)
    assert (tmp_path / "explicit").read_bytes() == (tmp_path / "implicit").read_bytes() == b"over TLS\n"
    assert (ftp_area.path / "up" / "secret.txt").read_bytes() == b"over TLS\n"
    # TLS was spoken: without the CA that signed the server's certificate, it is not trusted (for good)
    for url, remote in [(ftp_area.url, Remote(ftp_tls="required")), (ftp_area.ftps_url, Remote())]:
        with pytest.raises(transfer.TransferError, match="certificate") as info:
            ftp.download(f"{url}/secret.txt", str(tmp_path / "no"), retry=policy(), root=str(tmp_path), remote=remote)
        assert info.value.permanent
    # as the URL says (the default): plain FTP
    ftp.download(f"{ftp_area.url}/secret.txt", str(tmp_path / "plain"), retry=policy(), root=str(tmp_path),
                 remote=Remote())


def test_the_address_rule_holds_for_ftp(ftp_area, tmp_path, sleeps):
    ftp_area.put("in.txt", b"x")
    for call in (lambda remote: ftp.download(f"{ftp_area.url}/in.txt", str(tmp_path / "x"), retry=policy(),
                                             root=str(tmp_path), remote=remote),
                 lambda remote: ftp.listing(f"{ftp_area.url}/", retry=policy(), remote=remote),
                 lambda remote: ftp.upload(f"{ftp_area.url}/up.txt", str(tmp_path / "x"), retry=policy(),
                                           remote=remote)):
        with pytest.raises(transfer.TransferError, match="refused: 127.0.0.1 is loopback") as info:
            call(Remote(networks=AddressPolicy()))
        assert info.value.permanent
        call(Remote(networks=LOOPBACK))  # allowed: the control and the data connections
    assert sleeps == [] and (ftp_area.path / "up.txt").read_bytes() == b"x"


UNIX = """total 12
drwxr-xr-x    2 1001     1001         4096 Dec 07 09:07 sub dir
-rw-r--r--    1 1001     1001            6 Jan  1  2024  leading space.txt
-rw-r--r--+   1 ftp      ftp             6 Jan 01 12:00 acl.txt
lrwxrwxrwx    1 ftp                      7 Jan 01 12:00 link.txt -> a b.txt
prw-r--r--    1 ftp      ftp             0 Jan 01 12:00 fifo
drwxr-xr-x    2 ftp      ftp          4096 Jan 01 12:00 .
drwxr-xr-x    2 ftp      ftp          4096 Jan 01 12:00 ..
"""
DOS = """12-07-26  09:07AM       <DIR>          Results
12-07-26  09:07PM                 1234 data file.csv
"""


def test_the_listing_parser_reads_unix_and_dos_lines_and_refuses_names_that_leave_the_directory():
    assert ftp.parse_listing(UNIX) == [("sub dir", True), (" leading space.txt", False), ("acl.txt", False),
                                       ("link.txt", False)]
    assert ftp.parse_listing(DOS) == [("Results", True), ("data file.csv", False)]
    for line in ("-rw-r--r-- 1 ftp ftp 6 Jan 01 12:00 ../../etc/cron.d/x",
                 "-rw-r--r-- 1 ftp ftp 6 Jan 01 12:00 a/b"):
        with pytest.raises(ValueError, match="not a file name"):
            ftp.parse_listing(line)
    with pytest.raises(ValueError, match="no format"):
        ftp.parse_listing("type=file;size=6; a.txt")
