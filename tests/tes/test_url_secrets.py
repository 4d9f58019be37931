"""Found by review 4 (fixed) (low): a presigned URL's signature (S3 X-Amz-Signature, Azure SAS sig) is the credential of
most TES clients' http(s) URLs; it is shown as it is in task views (public_url) and in the transfer errors that
reach system_logs and the daemon's log (redact masks job_key/token/key/api_key/private_token only)."""
from pulsar_lite.staging.transfer import redact
from pulsar_lite.tes.staging import public_url

S3 = "https://bucket.s3.amazonaws.com/out.txt?X-Amz-Credential=AKIA%2F&X-Amz-Signature=deadbeef"
SAS = "https://acct.blob.core.windows.net/c/out.txt?sv=2022-11-02&sig=c2VjcmV0"


def test_presigned_signatures_are_masked_in_views_and_errors():
    for url in (S3, SAS):
        for shown in (public_url(url), redact(url)):
            assert "deadbeef" not in shown and "c2VjcmV0" not in shown, shown
