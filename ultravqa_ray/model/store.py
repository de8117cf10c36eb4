"""Model folders on object storage: fetched once per node into a content-keyed cache, verified.

Everywhere a model is named (``ModelConfig.name_or_path``, ``ServeConfig.model``, the jobs'
``model.name_or_path``), an ``s3://`` or ``gs://`` folder works like a local one:
:func:`ultravqa_ray.model.folder.model_folder` hands it to :func:`fetch_model`, which

1. lists the folder (its ``model/`` subfolder when the weights sit there, the training checkpoint
   layout), refusing a folder with pickle weights (``*.bin``, ``*.pt``, ``*.pth``, ``*.pkl``,
   ``*.ckpt``: loading one runs code) or without ``*.safetensors``;
2. keys the cache by content: the hash of the folder's :data:`CHECKSUMS_FILE` when it has one
   (training writes it, :func:`write_checksums`), else the hash of the listing (names and sizes);
3. under a file lock (one download per node, however many processes ask at once), downloads into
   a scratch folder, checks every file's size against the listing and its sha256 against the
   checksums, checks that every safetensors header parses and its tensors fit the file, and only
   then renames the scratch folder into place. A folder in place is never written again.

A corrupted object (checksum or size mismatch, unreadable safetensors header) raises
:class:`ModelFetchError` naming the file; nothing is cached. The cache root is
``$ULTRAVQA_RAY_MODEL_CACHE`` (default ``~/.cache/ultravqa-ray/models``). Endpoint and credentials
come from the usual environment (``AWS_ENDPOINT_URL``, ``AWS_*``, ``GOOGLE_APPLICATION_CREDENTIALS``,
``STORAGE_EMULATOR_HOST`` for a Cloud Storage emulator).

:func:`content_hash` names a model by its bytes (``sha256:...`` over every file's sha256): the
promotion record and the retraining job's step log use it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from connectors.listing import list_prefix
from connectors.storage import GCS_EMULATOR_ENV, object_filesystem
from connectors.uris import OBJECT_SCHEMES, scheme_of

log = logging.getLogger(__name__)

CACHE_ENV = "ULTRAVQA_RAY_MODEL_CACHE"
DEFAULT_CACHE = Path("~/.cache/ultravqa-ray/models")
CHECKSUMS_FILE = "checksums.json"
FETCHED_FILE = ".fetched.json"  # written beside the files of a fetched folder: where it came from
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
WEIGHTS_SUBDIR = "model"
_BLOCK = 1 << 22


class ModelFetchError(ValueError):
    """A remote model folder that cannot be used: missing, pickled, or corrupted (message says which)."""


@dataclass(frozen=True)
class FetchedModel:
    uri: str
    path: Path
    content_hash: str
    downloaded: bool  # False: found in the cache


#: Settings (never secrets) a driver passes to the Ray workers that load models, so that they fetch
#: from the store and into the cache the driver was told about. Credentials stay with the node: at
#: most the *path* of a credentials file travels, never a key.
FORWARDED_ENV = (
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "GOOGLE_APPLICATION_CREDENTIALS", GCS_EMULATOR_ENV,
    CACHE_ENV,
)  # fmt: skip


def forwarded_env() -> dict[str, str]:
    """The :data:`FORWARDED_ENV` variables set in this process (a Ray ``runtime_env``'s ``env_vars``)."""
    return {name: os.environ[name] for name in FORWARDED_ENV if os.environ.get(name)}


def is_remote(name_or_path: str) -> bool:
    return scheme_of(name_or_path) in OBJECT_SCHEMES


def cache_root(cache_dir: str | Path | None = None) -> Path:
    root = cache_dir or os.environ.get(CACHE_ENV) or DEFAULT_CACHE
    return Path(root).expanduser().resolve()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def _hash_files(files: dict[str, dict[str, object]]) -> str:
    text = json.dumps({name: files[name]["sha256"] for name in sorted(files)}, sort_keys=True)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _local_files(folder: Path) -> list[Path]:
    skip = {CHECKSUMS_FILE, FETCHED_FILE}
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in skip)


def checksums(folder: str | Path) -> dict[str, dict[str, object]]:
    """``{relative name: {"sha256", "size"}}`` of every file of a local folder (the checksums file excluded)."""
    root = Path(folder)
    return {
        p.relative_to(root).as_posix(): {"sha256": file_sha256(p), "size": p.stat().st_size} for p in _local_files(root)
    }


def write_checksums(folder: str | Path) -> Path:
    """Write :data:`CHECKSUMS_FILE` into ``folder`` (training calls it on every saved model)."""
    path = Path(folder) / CHECKSUMS_FILE
    path.write_text(json.dumps({"format_version": 1, "files": checksums(folder)}, indent=2, sort_keys=True) + "\n")
    return path


def content_hash(name_or_path: str | Path) -> str:
    """``sha256:<hex>`` of a model folder's bytes (local, or ``s3://``/``gs://`` fetched first)."""
    text = str(name_or_path)
    folder = fetch_model(text).path if is_remote(text) else Path(text).expanduser()
    if (folder / WEIGHTS_SUBDIR / "config.json").exists() and not (folder / "config.json").exists():
        folder = folder / WEIGHTS_SUBDIR
    if not folder.is_dir():
        raise ModelFetchError(f"{name_or_path} is not a model folder")
    return _hash_files(checksums(folder))


def check_safetensors(path: Path) -> None:
    """The file's header parses and every tensor lies inside the file; else :class:`ModelFetchError`."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            raise ModelFetchError(f"{path.name}: not a safetensors file (shorter than its header length)")
        (n,) = struct.unpack("<Q", raw)
        if n > size - 8 or n > 100 * 1024 * 1024:
            raise ModelFetchError(f"{path.name}: corrupted safetensors header (length {n}, file {size} bytes)")
        try:
            header = json.loads(fh.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelFetchError(f"{path.name}: corrupted safetensors header ({exc})") from exc
    data = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        end = info.get("data_offsets", [0, 0])[1] if isinstance(info, dict) else None
        if not isinstance(end, int) or end > data:
            raise ModelFetchError(f"{path.name}: tensor {name!r} lies outside the file (truncated?)")


def _listing(uri: str) -> tuple[str, dict[str, int]]:
    """The folder to fetch (``uri`` or its ``model/``) and ``{relative name: size}`` of its files."""
    base = uri.rstrip("/")
    entries = {e.video_id: int(e.size_bytes or 0) for e in list_prefix(base + "/")}
    if not entries:
        raise ModelFetchError(f"model folder {uri} is empty or does not exist")
    if "config.json" not in entries and f"{WEIGHTS_SUBDIR}/config.json" in entries:
        base = f"{base}/{WEIGHTS_SUBDIR}"
        entries = {k.split("/", 1)[1]: v for k, v in entries.items() if k.startswith(f"{WEIGHTS_SUBDIR}/")}
    pickles = sorted(k for k in entries if k.lower().endswith(PICKLE_SUFFIXES))
    if pickles:
        raise ModelFetchError(
            f"model folder {base} holds pickle files {pickles}: only safetensors weights are loaded "
            "(save with save_pretrained(safe_serialization=True))"
        )
    if not any(k.endswith(".safetensors") for k in entries):
        raise ModelFetchError(f"model folder {base} has no *.safetensors weights")
    return base, entries


def _read_object(uri: str) -> bytes:
    filesystem, path = object_filesystem(uri)
    with filesystem.open_input_stream(path) as fh:
        return fh.read()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def fetch_model(uri: str, cache_dir: str | Path | None = None) -> FetchedModel:
    """The local copy of the model folder ``uri`` (module docstring); downloads at most once per node."""
    base, sizes = _listing(uri)
    expected: dict[str, dict[str, object]] | None = None
    if CHECKSUMS_FILE in sizes:
        try:
            expected = json.loads(_read_object(f"{base}/{CHECKSUMS_FILE}"))["files"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelFetchError(f"{base}/{CHECKSUMS_FILE} is not a checksums file: {exc}") from exc
        assert expected is not None
        missing = sorted(set(expected) - set(sizes))
        if missing:
            raise ModelFetchError(f"model folder {base} lacks files its checksums name: {missing}")
        key = _hash_files(expected).removeprefix("sha256:")
    else:
        text = json.dumps({"uri": base, "sizes": sizes}, sort_keys=True)
        key = "listing-" + hashlib.sha256(text.encode()).hexdigest()
    root = cache_root(cache_dir)
    target = root / key[:40]
    if not (target / FETCHED_FILE).exists():
        with _locked(root / f"{key[:40]}.lock"):
            if not (target / FETCHED_FILE).exists():  # another process may have finished meanwhile
                _download(base, sizes, expected, target)
                return FetchedModel(uri=uri, path=target, content_hash=_hash_of(target), downloaded=True)
    return FetchedModel(uri=uri, path=target, content_hash=_hash_of(target), downloaded=False)


def _hash_of(target: Path) -> str:
    return str(json.loads((target / FETCHED_FILE).read_text())["content_hash"])


def _download(base: str, sizes: dict[str, int], expected: dict[str, dict[str, object]] | None, target: Path) -> None:
    t0 = time.perf_counter()
    scratch = target.with_name(target.name + f".partial-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        filesystem, root = object_filesystem(base)
        got: dict[str, dict[str, object]] = {}
        for name, size in sorted(sizes.items()):
            dest = scratch / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with filesystem.open_input_stream(f"{root}/{name}") as src, dest.open("wb") as out:
                for block in iter(lambda: src.read(_BLOCK), b""):
                    digest.update(block)
                    out.write(block)
            actual = dest.stat().st_size
            if actual != size:
                raise ModelFetchError(f"{base}/{name}: read {actual} bytes, the listing says {size}")
            if name != CHECKSUMS_FILE:
                got[name] = {"sha256": digest.hexdigest(), "size": actual}
        if expected is not None:
            for name, want in expected.items():
                if got.get(name, {}).get("sha256") != want.get("sha256"):
                    raise ModelFetchError(
                        f"{base}/{name} is corrupted: its sha256 differs from {CHECKSUMS_FILE} (refused, nothing cached)"
                    )
        for name in got:
            if name.endswith(".safetensors"):
                check_safetensors(scratch / name)
        if expected is None:
            write_checksums(scratch)
        meta = {"uri": base, "content_hash": _hash_files(got), "files": got, "fetched_s": time.perf_counter() - t0}
        (scratch / FETCHED_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        shutil.rmtree(target, ignore_errors=True)  # a half-written folder of a killed fetch
        scratch.rename(target)
    except ModelFetchError:
        raise
    except OSError as exc:
        raise ModelFetchError(f"cannot fetch model folder {base}: {exc}") from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log.info("fetched model %s into %s in %.1fs", base, target, time.perf_counter() - t0)
