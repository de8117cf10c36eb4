"""The Scorer's decode pool: worker processes give the same frames and errors as decoding in place,
and a worker that dies costs only the upload it was decoding."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from connectors.allow_list import AllowList
from connectors.wire.errors import ErrorKind, ProcessingError
from tests.fixtures.clips import make_clip
from ultravqa_ray.serve.decode_pool import DecodePool
from ultravqa_ray.video import DecodeConfig, DecodedVideo, decode_uri

DECODE = DecodeConfig(num_frames=4, height=32, width=32)


def crash_on_poison(uri: str, decode: DecodeConfig, **storage) -> DecodedVideo:
    """Runs in the worker process: kills it (as a codec crash or the OOM killer would) for 'poison'."""
    if "poison" in uri:
        os._exit(3)
    return decode_uri(uri, decode, **storage)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pool")
    good = [make_clip(folder / f"good{i}.mp4", n_frames=12, size=(64, 48)) for i in range(3)]
    (folder / "notes.mp4").write_bytes(b"not a video\n" * 50)
    return folder, [str(p) for p in good]


def test_processes_decode_the_same_frames_as_in_place(clips):
    _, good = clips
    pool = DecodePool("processes", 2, DECODE, {})
    try:
        pooled = pool.decode_many(good)
        alone = asyncio.run(pool.decode(good[1]))
    finally:
        pool.close()
    for uri, got in zip(good, pooled, strict=True):
        assert np.array_equal(got.frames, decode_uri(uri, DECODE).frames)
    assert np.array_equal(alone.frames, pooled[1].frames)
    assert pool.workers == 2


@pytest.mark.parametrize("kind", ["processes", "threads"])
def test_input_errors_cross_the_pool_with_their_kind(clips, kind):
    folder, good = clips
    storage = {"allow": AllowList.parse([str(folder)])}
    pool = DecodePool(kind, 1, DECODE, storage)
    try:
        results = pool.decode_many([str(folder / "missing.mp4"), "/etc/hostname", str(folder / "notes.mp4"), good[0]])
        with pytest.raises(ProcessingError) as raised:
            asyncio.run(pool.decode(str(folder / "missing.mp4")))
    finally:
        pool.close()
    kinds = [r.kind if isinstance(r, ProcessingError) else "ok" for r in results]
    assert kinds == [ErrorKind.NOT_FOUND, ErrorKind.FORBIDDEN, ErrorKind.NOT_A_VIDEO, "ok"]
    assert raised.value.kind is ErrorKind.NOT_FOUND and "missing.mp4" in raised.value.message


def test_a_dying_worker_costs_only_the_upload_it_was_decoding(clips):
    folder, good = clips
    poison = str(folder / "poison.mp4")
    pool = DecodePool("processes", 2, DECODE, {}, decode_fn=crash_on_poison)
    try:
        results = pool.decode_many([good[0], poison, good[1], good[2]])

        async def concurrently():
            return await asyncio.gather(*(pool.decode(u) for u in [good[0], poison, good[2]]), return_exceptions=True)

        answers = asyncio.run(concurrently())
        after = pool.decode_many([good[1]])  # the replaced pool goes on working
    finally:
        pool.close()
    for got in [results[0], *results[2:], answers[0], answers[2], after[0]]:
        assert isinstance(got, DecodedVideo), got
    for failed in (results[1], answers[1]):
        assert isinstance(failed, ProcessingError) and failed.kind is ErrorKind.INTERNAL
        assert "poison.mp4" in failed.message and "died" in failed.message


def test_an_unknown_pool_kind_is_refused():
    with pytest.raises(ValueError, match="'fibres'"):
        DecodePool("fibres", 1, DECODE, {})  # type: ignore[arg-type]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return "\nState:\tZ" not in status.read()  # a zombie has exited; only its reaping is left
    except FileNotFoundError:
        return False


def test_workers_exit_when_their_replica_is_killed():
    """A replica killed outright (SIGKILL: ray.kill, the OOM killer) leaves no decode workers behind."""
    code = (
        "import time; from ultravqa_ray.serve.decode_pool import DecodePool; from ultravqa_ray.video import DecodeConfig\n"
        "pool = DecodePool('processes', 2, DecodeConfig(), {})\n"
        "print(*pool._executor._processes, flush=True); time.sleep(120)\n"
    )
    replica = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        workers = [int(pid) for pid in replica.stdout.readline().split()]
        assert len(workers) == 2 and all(_alive(pid) for pid in workers)
    finally:
        replica.kill()
        replica.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers), "decode workers outlived their replica"
