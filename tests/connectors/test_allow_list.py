"""AllowList and StorageSettings: prefixes are folders, traversal and encoding tricks are refused,
symlinks are judged by where they lead, and open_input checks before it reads."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from connectors.storage import AllowList, StorageSettings, open_input
from connectors.wire.errors import ErrorKind, ProcessingError


def _kind(allow: AllowList, uri: str, **kw) -> str:
    try:
        allow.check(uri, **kw)
    except ProcessingError as exc:
        return exc.kind.value
    return "ok"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://b/pre/x.mp4", "ok"),
        ("s3://b/pre/deep/x.mp4", "ok"),
        ("s3://b/prefix-other/x.mp4", "forbidden"),  # prefix boundary: a prefix is a folder
        ("s3://b/pre", "ok"),
        ("s3://b/prex.mp4", "forbidden"),
        ("s3://other/pre/x.mp4", "forbidden"),
        ("gs://b/pre/x.mp4", "forbidden"),  # same names, other store
        ("s3://b/pre/../secret.mp4", "forbidden"),
        ("s3://b/pre/%2e%2e/secret.mp4", "forbidden"),
        ("s3://b/pre/%252e%252e/secret.mp4", "forbidden"),  # double encoding
        ("s3://b/pre%2F..%2Fsecret.mp4", "forbidden"),
        ("s3://b/pre/./x.mp4", "forbidden"),
        ("s3://b/pre/a\\..\\x.mp4", "forbidden"),
        ("s3://b/pre/x.mp4?endpoint_override=evil.example", "forbidden"),
        ("s3://b/pre/x.mp4#frag", "forbidden"),
        ("s3://b/pre/a%20b.mp4", "ok"),
        ("gs://open/anything/x.mp4", "ok"),
        ("ftp://b/pre/x.mp4", "invalid_message"),
    ],
)
def test_object_store_rules(uri: str, expected: str):
    allow = AllowList.parse(["s3://b/pre", "gs://open/"])
    assert _kind(allow, uri) == expected


def test_refusal_names_the_uri_and_the_list():
    allow = AllowList.parse(["s3://b/pre/"])
    with pytest.raises(ProcessingError) as info:
        allow.check("s3://b/other/x.mp4")
    assert info.value.kind is ErrorKind.FORBIDDEN
    assert "s3://b/other/x.mp4" in info.value.message and "s3://b/pre/" in info.value.message


def test_local_roots_follow_symlinks_and_dotdot(tmp_path: Path):
    root = tmp_path / "videos"
    (root / "sub").mkdir(parents=True)
    outside = tmp_path / "secret.mp4"
    outside.write_bytes(b"x")
    (root / "sub" / "ok.mp4").write_bytes(b"x")
    (root / "link.mp4").symlink_to(outside)  # a link inside the root leading out
    (root / "dirlink").symlink_to(tmp_path)
    (tmp_path / "videos-other").mkdir()
    allow = AllowList.parse([str(root)])
    assert _kind(allow, str(root / "sub" / "ok.mp4")) == "ok"
    assert _kind(allow, f"file://{root}/sub/ok.mp4") == "ok"
    assert _kind(allow, "sub/ok.mp4", base_dir=root) == "ok"
    assert _kind(allow, str(root / "link.mp4")) == "forbidden"
    assert _kind(allow, str(root / "dirlink" / "secret.mp4")) == "forbidden"
    assert _kind(allow, f"{root}/sub/../../secret.mp4") == "forbidden"
    assert _kind(allow, f"file://{root}/%2e%2e/secret.mp4") == "forbidden"
    assert _kind(allow, str(tmp_path / "videos-other" / "x.mp4")) == "forbidden"  # prefix boundary
    assert _kind(allow, "../secret.mp4", base_dir=root) == "forbidden"
    assert _kind(AllowList.parse([f"file://{root}"]), str(root / "sub" / "ok.mp4")) == "ok"


def test_a_symlinked_root_is_resolved(tmp_path: Path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "a.mp4").write_bytes(b"x")
    (tmp_path / "alias").symlink_to(real)
    allow = AllowList.parse([str(tmp_path / "alias")])
    assert _kind(allow, str(real / "a.mp4")) == "ok"
    assert _kind(allow, str(tmp_path / "alias" / "a.mp4")) == "ok"


def test_any_and_empty():
    assert _kind(AllowList.any(), "s3://whatever/x.mp4") == "ok"
    assert _kind(AllowList.parse([]), "/anything.mp4") == "forbidden"


@pytest.mark.parametrize("entry", ["relative/dir", "", "s3://", "s3://b/../x", "http://b/x", "s3://b/p?x=1"])
def test_malformed_entries_are_refused(entry: str):
    with pytest.raises(ValueError, match="allow-list entry"):
        AllowList.parse([entry])


def test_allow_list_is_immutable():
    allow = AllowList.parse(["s3://b/"])
    with pytest.raises(AttributeError):
        allow.entries = ()  # type: ignore[misc]


def test_open_input_checks_before_reading(tmp_path: Path):
    allowed = tmp_path / "in"
    allowed.mkdir()
    (allowed / "a.bin").write_bytes(b"abc")
    allow = AllowList.parse([str(allowed)])
    with open_input(str(allowed / "a.bin"), allow=allow) as opened:
        assert opened.file.read() == b"abc"
    # A missing file outside the list is *forbidden*, not not_found: nothing was looked up.
    with pytest.raises(ProcessingError) as info:
        open_input(str(tmp_path / "missing.bin"), allow=allow)
    assert info.value.kind is ErrorKind.FORBIDDEN
    with pytest.raises(ProcessingError) as info:
        open_input("s3://bucket/x.mp4", allow=allow)
    assert info.value.kind is ErrorKind.FORBIDDEN
    # allow=None keeps the old behaviour: everything may be opened.
    with open_input(str(allowed / "a.bin")) as opened:
        assert opened.size_bytes == 3


def test_storage_settings(tmp_path: Path):
    settings = StorageSettings(
        allow=[str(tmp_path), "s3://b/p/"], s3_endpoint_override="127.0.0.1:9", base_dir="/x"
    )
    kwargs = settings.open_kwargs()
    assert set(kwargs) == {"allow", "s3_endpoint_override", "base_dir"}
    assert kwargs["allow"].allows("s3://b/p/v.mp4") and not kwargs["allow"].allows("s3://b/q/v.mp4")
    assert kwargs["base_dir"] == Path("/x")
    assert StorageSettings().allow_list().allow_all
    with pytest.raises(ValidationError, match="allow-list entry"):
        StorageSettings(allow=["relative"])
    with pytest.raises(ValidationError):
        StorageSettings(allowed=["s3://b/"])  # extra=forbid: typos fail


class _SwapAfterCheck(AllowList):
    """An allow-list that, once its check has passed, lets an attacker swap ``victim`` for a link
    to ``target``: the race between the check and the open, made deterministic."""

    def check(self, uri: str, *, base_dir=None) -> Path | None:
        approved = super().check(uri, base_dir=base_dir)
        victim, target = self.swap  # type: ignore[attr-defined]
        if victim.is_dir():
            victim.rename(victim.with_name(victim.name + ".moved"))
        else:
            victim.unlink()
        victim.symlink_to(target)
        return approved


def _swapping(root: Path, victim: Path, target: Path) -> AllowList:
    allow = _SwapAfterCheck(**AllowList.parse([str(root)]).__dict__)
    object.__setattr__(allow, "swap", (victim, target))
    return allow


def test_a_file_swapped_for_a_symlink_after_the_check_is_refused(tmp_path: Path):
    root, outside = tmp_path / "in", tmp_path / "secret.txt"
    root.mkdir()
    outside.write_text("secret")
    clip = root / "clip.mp4"
    clip.write_bytes(b"video")
    with pytest.raises(ProcessingError) as info:
        open_input(str(clip), allow=_swapping(root, clip, outside))
    assert info.value.kind is ErrorKind.FORBIDDEN and "symbolic link after the allow-list check" in info.value.message


def test_a_folder_swapped_for_a_symlink_after_the_check_is_refused(tmp_path: Path):
    root, elsewhere = tmp_path / "in", tmp_path / "elsewhere"
    (root / "sub").mkdir(parents=True)
    elsewhere.mkdir()
    (root / "sub" / "clip.mp4").write_bytes(b"video")
    (elsewhere / "clip.mp4").write_text("secret")
    with pytest.raises(ProcessingError) as info:
        open_input(str(root / "sub" / "clip.mp4"), allow=_swapping(root, root / "sub", elsewhere))
    assert info.value.kind is ErrorKind.FORBIDDEN and str(elsewhere / "clip.mp4") in info.value.message
    # without the swap the same file opens, once, at the approved path
    (root / "sub").unlink()
    (root / "sub.moved").rename(root / "sub")
    with open_input(str(root / "sub" / "clip.mp4"), allow=AllowList.parse([str(root)])) as opened:
        assert opened.file.read() == b"video"
