"""Decoder benchmark: sampling 16 frames, side by side with the obvious alternatives.

    python bench/bench_decode.py            # clips are generated once and cached in bench/out/

Rows, on 30 s 640x360 30 fps H.264 clips with keyframe intervals 30 and 250 (made here with PyAV):
- ``decode_video``: this project's decoder (seek policy auto; forced seek and sequential shown too);
- (a) ``pyav decode-all``: decode every frame with PyAV (same threads) and keep the same 16;
- (b) the ``ffmpeg`` command line extracting the same 16 frames, two ways: one process with 16
  seeking inputs (``-ss t -i clip`` each), and one pass with a ``select`` filter.
Then the peak resident memory (in a child process) and time of sampling a 10-minute 1080p clip.
Times are medians of several runs, interleaved so that all rows see the same machine state.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ultravqa_ray.video import DecodeConfig, decode_video  # noqa: E402
from ultravqa_ray.video.sampling import sample_times  # noqa: E402

OUT = ROOT / "bench" / "out"
FRAMES = 16
SIZE = 224
FFMPEG_HINT = "ffmpeg not found: install it (Debian/Ubuntu: apt-get install -y ffmpeg) for the ffmpeg rows"


def make_clip(
    path: Path, seconds: float, fps: int, width: int, height: int, gop: int, preset: str, grain: bool = True
) -> Path:
    """A synthetic H.264 clip that behaves like camera footage: a smooth textured scene panning
    slowly, a moving object, and light sensor grain (off: a cheap, small file for the long clip).
    Frames are built in YUV to keep this cheap."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part.mp4")
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 160, size=((height + 256) // 8, (width + 256) // 8)).astype(np.uint8)
    scene = np.kron(coarse, np.ones((8, 8), np.uint8))  # blocky texture, smoothed below
    scene = (
        (scene[:-1, :-1].astype(np.uint16) + scene[1:, 1:] + scene[:-1, 1:] + scene[1:, :-1]) // 4
    ).astype(np.uint8)
    noise = [rng.integers(0, 6 if grain else 1, size=(height, width), dtype=np.uint8) for _ in range(8)]
    chroma_u = np.kron(coarse[: height // 16 + 1, : width // 16 + 1] // 4 + 100, np.ones((8, 8), np.uint8))
    chroma_v = np.full((height // 2, width // 2), 128, np.uint8)
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": preset, "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
        for i in range(int(seconds * fps)):
            dx, dy = (i // 2) % 256, (i // 5) % 128
            luma = scene[dy : dy + height, dx : dx + width] + noise[i % len(noise)] + 16
            box = (i * 5) % max(width - 96, 1)
            luma[height // 3 : height // 3 + 96, box : box + 96] = 220
            u = chroma_u[: height // 2, : width // 2]
            yuv = np.concatenate([luma, u.reshape(-1, width), chroma_v.reshape(-1, width)])
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    tmp.rename(path)
    return path


def pyav_decode_all(path: Path, threads: int) -> np.ndarray:
    """Baseline (a): decode every frame, keep the frame on screen at each of the 16 sample times."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        duration = float(stream.duration * stream.time_base)
        times = sample_times(duration, DecodeConfig(num_frames=FRAMES))
        kept: list[np.ndarray] = []
        held = None
        i = 0

        def convert(frame: av.VideoFrame) -> np.ndarray:  # threads=1: swscale's pool costs ~6 ms a call
            return frame.to_ndarray(
                width=SIZE, height=SIZE, format="rgb24", interpolation="BICUBIC", threads=1
            )

        for frame in container.decode(stream):
            while i < len(times) and frame.time > times[i]:
                kept.append(convert(held))
                i += 1
            held = frame
        while i < len(times):
            kept.append(convert(held))
            i += 1
    return np.stack(kept)


def ffmpeg_seek_inputs(path: Path, times: np.ndarray, workdir: Path) -> None:
    """Baseline (b1): one ffmpeg process, 16 inputs each opened with an input seek (-ss before -i)."""
    cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y"]
    for t in times:
        cmd += ["-ss", f"{t:.6f}", "-i", str(path)]
    for k in range(len(times)):
        cmd += [
            "-map",
            f"{k}:v:0",
            "-frames:v",
            "1",
            "-s",
            f"{SIZE}x{SIZE}",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            str(workdir / f"s{k}.rgb"),
        ]
    subprocess.run(cmd, check=True)


def ffmpeg_select(path: Path, times: np.ndarray, fps: float, workdir: Path) -> None:
    """Baseline (b2): one ffmpeg pass that decodes everything and keeps 16 frames by index."""
    picks = "+".join(f"eq(n\\,{int(t * fps)})" for t in times)
    cmd = [
        "ffmpeg",
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        "-i",
        str(path),
        "-vf",
        f"select={picks},scale={SIZE}:{SIZE}",
        "-fps_mode",
        "passthrough",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        str(workdir / "select.rgb"),
    ]
    subprocess.run(cmd, check=True)


def child_memory(path: Path, mode: str) -> dict:
    """Run one decode in a fresh interpreter; return its peak RSS (MB) and wall time."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path)], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _child(mode: str, path: str) -> None:
    start = time.perf_counter()
    if mode == "decoder":
        result = decode_video(path, DecodeConfig(num_frames=FRAMES))
        note = f"{result.strategy}, {result.frames_used} frames"
    else:
        pyav_decode_all(Path(path), DecodeConfig().threads)
        note = "decode-all"
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mb": peak_mb, "seconds": time.perf_counter() - start, "note": note}))


def bench_clip(label: str, path: Path, threads: int, have_ffmpeg: bool, workdir: Path, repeats: int) -> None:
    times = sample_times(30.0, DecodeConfig(num_frames=FRAMES))
    cfg = {p: DecodeConfig(num_frames=FRAMES, seek_policy=p) for p in ("auto", "seek", "sequential")}
    strategy = decode_video(path, cfg["auto"]).strategy
    methods = {
        "decode_video (auto)": (lambda: decode_video(path, cfg["auto"]), f"chose {strategy}"),
        "decode_video (seek forced)": (lambda: decode_video(path, cfg["seek"]), ""),
        "decode_video (sequential forced)": (lambda: decode_video(path, cfg["sequential"]), ""),
        "(a) pyav decode-all, keep 16": (lambda: pyav_decode_all(path, threads), "baseline"),
    }
    if have_ffmpeg:
        methods["(b1) ffmpeg 16 seeking inputs"] = (
            lambda: ffmpeg_seek_inputs(path, times, workdir),
            "1 process",
        )
        methods["(b2) ffmpeg select filter"] = (lambda: ffmpeg_select(path, times, 30.0, workdir), "1 pass")
    for fn, _ in methods.values():  # warm-up (page cache, first-call costs)
        fn()
    samples: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):  # interleaved, so every row sees the same machine state
        for name, (fn, _) in methods.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    rows = {name: statistics.median(samples[name]) for name in methods}
    base = rows["(a) pyav decode-all, keep 16"]
    for name, seconds in rows.items():
        print(f"{label:<8} {name:<34} {seconds * 1e3:>9.1f} {base / seconds:>7.2f}x  {methods[name][1]}")
    ours = rows["decode_video (auto)"]
    verdict = f"auto is {base / ours:.2f}x faster than (a)"
    ffmpeg_best = min((s for n, s in rows.items() if n.startswith("(b")), default=None)
    if ffmpeg_best is not None:
        verdict += f", {ffmpeg_best / ours:.2f}x faster than the best ffmpeg row"
    print(f"{label:<8} => {verdict}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per row (median reported)")
    parser.add_argument("--skip-long", action="store_true", help="skip the 10-minute 1080p memory check")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return

    threads = DecodeConfig().threads
    print(f"decoder threads={threads}, {FRAMES} frames at {SIZE}x{SIZE}, median of {args.repeats} runs")
    clips = {
        "gop30": make_clip(OUT / "clip_640x360_30s_gop30.mp4", 30, 30, 640, 360, 30, "medium"),
        "gop250": make_clip(OUT / "clip_640x360_30s_gop250.mp4", 30, 30, 640, 360, 250, "medium"),
    }
    have_ffmpeg = shutil.which("ffmpeg") is not None
    if not have_ffmpeg:
        print(FFMPEG_HINT)
    header = f"{'clip':<8} {'method':<34} {'time ms':>9} {'vs (a)':>8}  note"
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for label, path in clips.items():
            bench_clip(label, path, threads, have_ffmpeg, Path(tmp), args.repeats)
    if not args.skip_long:
        long_clip = make_clip(
            OUT / "clip_1920x1080_600s_gop250.mp4", 600, 30, 1920, 1080, 250, "ultrafast", grain=False
        )
        print("10-minute 1080p clip (GOP 250), one decode in a fresh process:")
        for mode in ("decoder", "decode-all"):
            stats = child_memory(long_clip, mode)
            print(
                f"  {mode:<11} peak RSS {stats['peak_mb']:7.1f} MB   time {stats['seconds']:6.2f} s   {stats['note']}"
            )


if __name__ == "__main__":
    main()
