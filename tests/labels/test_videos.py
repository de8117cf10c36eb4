"""Presigned S3 URLs (checked against moto and botocore) and Label Studio local-files URLs."""

from __future__ import annotations

import datetime as dt
import urllib.request
from urllib.parse import parse_qs, urlsplit

import pytest

from ultravqa_ray.labels.videos import local_files_url, presign_s3


def test_presigned_url_fetches_the_object_from_a_path_style_endpoint(s3_server, monkeypatch):
    """moto checks the URL's shape and key, not the signature: botocore's equality below does that."""
    uri = s3_server.upload("label-videos", "clips/a b.mp4", b"not really a video")
    url = presign_s3(uri, expires_s=600, endpoint_override=s3_server.endpoint)
    assert url.startswith(f"{s3_server.url}/label-videos/clips/a%20b.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256&")
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.read() == b"not really a video"
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ValueError, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set"):
        presign_s3(uri, expires_s=600, endpoint_override=s3_server.endpoint)


def test_presigned_url_equals_botocore_for_the_same_instant(monkeypatch):
    botocore_auth = pytest.importorskip("botocore.auth")
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    now = dt.datetime(2026, 12, 7, 12, 0, 0, tzinfo=dt.UTC)
    ours = presign_s3("s3://bucket/dir/key 1.mp4", expires_s=3600, endpoint_override="http://127.0.0.1:9000",
                      region="eu-west-1", access_key="AK", secret_key="SK", now=now)  # fmt: skip
    monkeypatch.setattr(botocore_auth.datetime, "datetime", type("Frozen", (dt.datetime,), {
        "utcnow": classmethod(lambda cls: now.replace(tzinfo=None)),
        "now": classmethod(lambda cls, tz=None: now if tz else now.replace(tzinfo=None))}))  # fmt: skip
    request = AWSRequest(method="GET", url="http://127.0.0.1:9000/bucket/dir/key%201.mp4")
    botocore_auth.S3SigV4QueryAuth(Credentials("AK", "SK"), "s3", "eu-west-1", expires=3600).add_auth(request)
    a, b = urlsplit(ours), urlsplit(request.url)
    assert (a.netloc, a.path) == (b.netloc, b.path)
    assert parse_qs(a.query) == parse_qs(b.query)


def test_local_files_url_is_relative_to_the_document_root(tmp_path):
    clip = tmp_path / "videos" / "c 1.mp4"
    assert local_files_url(clip, tmp_path) == "/data/local-files/?d=videos%2Fc+1.mp4"
    with pytest.raises(ValueError, match="is not under the local-files root"):
        local_files_url("/elsewhere/c.mp4", tmp_path)
