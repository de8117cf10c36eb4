"""connectors.storage.open_input: local paths, file://, s3:// (a real moto server) and gs:// (the GCS
emulator), error kinds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from connectors import storage
from connectors.storage import open_input
from connectors.wire.errors import ErrorKind, ProcessingError


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / "clip with space.bin"
    path.write_bytes(bytes(range(256)) * 40)
    return path


def test_local_path_opens_seekable_with_size(payload: Path):
    with open_input(str(payload)) as opened:
        assert opened.size_bytes == payload.stat().st_size
        assert opened.local_path is not None and Path(os.path.realpath(opened.local_path)) == payload.resolve()
        opened.file.seek(256)
        assert opened.file.read(3) == bytes([0, 1, 2])


def test_relative_path_resolves_against_base_dir(payload: Path):
    with open_input(payload.name, base_dir=payload.parent) as opened:
        assert opened.local_path is not None and Path(os.path.realpath(opened.local_path)) == payload.resolve()


def test_file_uri_is_percent_decoded(payload: Path):
    uri = payload.as_uri()
    assert "%20" in uri
    with open_input(uri) as opened:
        assert opened.file.read() == payload.read_bytes()


@pytest.mark.parametrize(
    ("uri", "kind", "fragment"),
    [
        ("http://example.com/v.mp4", ErrorKind.INVALID_MESSAGE, "unsupported URI scheme 'http'"),
        ("ftp://host/v.mp4", ErrorKind.INVALID_MESSAGE, "unsupported URI scheme 'ftp'"),
        ("", ErrorKind.INVALID_MESSAGE, "non-empty"),
        ("file://otherhost/v.mp4", ErrorKind.INVALID_MESSAGE, "remote host"),
        ("s3://bucket-only", ErrorKind.INVALID_MESSAGE, "does not name an object"),
        ("s3://bucket/folder/", ErrorKind.INVALID_MESSAGE, "does not name an object"),
    ],
)
def test_bad_uris_are_invalid_messages(uri: str, kind: ErrorKind, fragment: str):
    with pytest.raises(ProcessingError) as err:
        open_input(uri, s3_endpoint_override="127.0.0.1:9")
    assert err.value.kind == kind
    assert fragment in err.value.message


def test_missing_local_file_is_not_found(tmp_path: Path):
    with pytest.raises(ProcessingError) as err:
        open_input(str(tmp_path / "nope.mp4"))
    assert err.value.kind == ErrorKind.NOT_FOUND
    assert "nope.mp4" in err.value.message


def test_directory_is_not_found(tmp_path: Path):
    with pytest.raises(ProcessingError) as err:
        open_input(str(tmp_path))
    assert err.value.kind == ErrorKind.NOT_FOUND
    assert "directory" in err.value.message


def test_permission_denied_is_forbidden(monkeypatch: pytest.MonkeyPatch, payload: Path):
    def denied(uri: str, path: Path, *, checked: bool):  # the tests run as root, where chmod 000 does not bite
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(storage, "_open_local", denied)
    with pytest.raises(ProcessingError) as err:
        open_input(str(payload))
    assert err.value.kind == ErrorKind.FORBIDDEN


def test_access_denied_from_object_store_is_forbidden(monkeypatch: pytest.MonkeyPatch):
    def denied(uri: str, scheme: str, endpoint: str | None):
        raise OSError("AWS Error ACCESS_DENIED during GetObject operation: AccessDenied")

    monkeypatch.setattr(storage, "_open_object", denied)
    with pytest.raises(ProcessingError) as err:
        open_input("s3://bucket/key.mp4")
    assert err.value.kind == ErrorKind.FORBIDDEN


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("127.0.0.1:9000", ("127.0.0.1:9000", "http")),
        ("localhost:9000", ("localhost:9000", "http")),
        ("minio.internal:9000", ("minio.internal:9000", "https")),
        ("http://minio.internal:9000/", ("minio.internal:9000", "http")),
        ("https://127.0.0.1:9000", ("127.0.0.1:9000", "https")),
    ],
)
def test_endpoint_scheme(endpoint: str, expected: tuple[str, str]):
    assert storage._split_endpoint(endpoint) == expected


def test_s3_object_reads_like_the_local_file(s3_server, payload: Path):
    uri = s3_server.upload("storage-test", "dir/clip.bin", payload)
    for endpoint in (s3_server.endpoint, s3_server.url):
        with open_input(uri, s3_endpoint_override=endpoint) as opened:
            assert opened.size_bytes == payload.stat().st_size
            assert opened.local_path is None
            opened.file.seek(opened.size_bytes - 10)  # random access: no download first
            assert opened.file.read() == payload.read_bytes()[-10:]


def test_missing_s3_object_is_not_found(s3_server):
    s3_server.create_bucket("storage-test")
    with pytest.raises(ProcessingError) as err:
        open_input("s3://storage-test/missing.mp4", s3_endpoint_override=s3_server.endpoint)
    assert err.value.kind == ErrorKind.NOT_FOUND
    assert "s3://storage-test/missing.mp4" in err.value.message


@pytest.mark.parametrize("form", ["endpoint", "url"])
def test_gs_object_reads_like_the_local_file(gcs_server, payload: Path, form: str, monkeypatch):
    """``STORAGE_EMULATOR_HOST`` as ``host:port`` or as a URL points ``gs://`` at the emulator."""
    monkeypatch.setenv(storage.GCS_EMULATOR_ENV, getattr(gcs_server, form))
    uri = gcs_server.upload("storage-test", "dir/clip.bin", payload)
    with open_input(uri) as opened:
        assert opened.size_bytes == payload.stat().st_size
        opened.file.seek(opened.size_bytes - 10)
        assert opened.file.read() == payload.read_bytes()[-10:]
    with pytest.raises(ProcessingError) as err:
        open_input("gs://storage-test/missing.mp4")
    assert err.value.kind == ErrorKind.NOT_FOUND
    assert "gs://storage-test/missing.mp4" in err.value.message


def test_connectors_do_not_import_the_core():
    source = Path(storage.__file__).read_text()
    assert "ultravqa_ray" not in source
