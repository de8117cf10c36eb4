"""Pixels of a synthetic clip: a textured scene on a torus world seen by a moving camera.

The scene is a horizon split (sky over textured ground), ``Factors.n_objects`` shapes (object 0
is the framed subject, tracked by the camera and oscillating about its anchor; the others drift
across the wrapped world) and optional clutter specks on the ground. The camera pans the ground
(Fourier phase shift, exact sub-pixel motion), shakes, and the sensor/encoder path then applies
exposure, blur, down-scaling, noise and the x264 CRF. Lengths are in units of ``min(H, W) / 128``
so the look is the same at any resolution. Everything is vectorised over (frame, row, column).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ultravqa_ray.data.config import SynthConfig
from ultravqa_ray.data.factors import Factors

MAX_SPEED = 6.0  # px per frame (at 128 px) of camera pan and object motion at speed 1
MAX_SHAKE = 2.0  # px sd of per-frame camera shake at shake 1
MAX_JITTER = 3.0  # px sd of per-frame object jitter at jitter 1
MAX_BLUR = 3.0  # px Gaussian sigma at blur 1
MAX_DOWNSCALE = 4.0  # linear down-scaling factor at downscale 1
MAX_NOISE = 0.16  # noise sd (of the 0..1 range) at noise 1
MAX_EV = 1.5  # log2 of the exposure curve's gamma at |exposure| 1
MAX_TILT_DEG = 25.0


def render_clip(factors: Factors, config: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """Render the clip: ``(T, H, W, 3)`` uint8, T = ``config.n_frames``."""
    H, W, T = config.height, config.width, config.n_frames
    u = min(H, W) / 128.0
    f = factors

    # time: displayed frame t shows source instant sigma[t] (steps 0 = duplicate, 2 = drop)
    p_defect = 0.6 * f.frame_defects
    steps = np.where(rng.uniform(size=T - 1) < p_defect, 2 * rng.integers(0, 2, size=T - 1), 1)
    sigma = np.concatenate([[0], np.cumsum(steps)])
    src, inverse = np.unique(sigma, return_inverse=True)
    s = src.astype(np.float32)[:, None]  # (S, 1) source instants actually shown
    n_src = int(sigma[-1]) + 1

    # camera: pan along a random direction plus white shake, per source instant
    cam_dir = _unit(rng.uniform(0, 2 * np.pi))
    shake_all = rng.normal(0, f.shake * MAX_SHAKE * u, size=(n_src, 2)).astype(np.float32)
    shake = shake_all[src]
    cam = s * (f.camera_speed * MAX_SPEED * u) * cam_dir  # (S, 2) as (x, y)

    palette = _palette(rng, f.disharmony)
    ground = _ground_tile(rng, f, palette, H, W, u)
    sky, clouds = _sky_tile(rng, palette, H, W)
    frames = _shift(ground, cam + shake)  # (S, H, W, 3)
    sky_frames = sky * (1.0 + _shift(clouds, 0.3 * cam + shake))

    ys = np.arange(H, dtype=np.float32)[None, :, None]
    xs = np.arange(W, dtype=np.float32)[None, None, :]
    angle = np.deg2rad(f.tilt * MAX_TILT_DEG) * rng.choice([-1.0, 1.0])
    horizon = H * rng.uniform(0.35, 0.5) + shake[:, 1, None, None]
    level = horizon + np.tan(angle) * (xs - W / 2 - shake[:, 0, None, None])
    mask = np.clip((ys - level) * np.cos(angle) + 0.5, 0, 1)[..., None]
    frames = sky_frames * (1 - mask) + frames * mask

    n_obj = f.n_objects
    jitter = rng.normal(0, f.jitter * MAX_JITTER * u, size=(max(n_obj, 1), n_src, 2)).astype(np.float32)
    for i in range(1, n_obj):  # drifting objects in world coordinates, wrapped on the torus
        p0 = rng.uniform(0, 1, size=2) * (W, H)
        vel = f.object_speed * MAX_SPEED * u * rng.uniform(0.7, 1.3) * _unit(rng.uniform(0, 2 * np.pi))
        pos = p0 + s * vel - cam - shake + jitter[i, src]
        radius = rng.uniform(7, 12) * u
        _draw(frames, pos, radius, rng, palette[2 + i % (len(palette) - 2)], W, H, wrap=True)
    if n_obj:  # the subject: anchored by framing, oscillating with the object speed
        radius = rng.uniform(14, 20) * u
        anchor = np.array([W / 2, H / 2]) + f.framing * 0.5 * min(W, H) * _unit(rng.uniform(0, 2 * np.pi))
        amp = f.object_speed * MAX_SPEED * u * T / (2 * np.pi)
        phase = 2 * np.pi * s / T + rng.uniform(0, 2 * np.pi)
        pos = anchor + amp * np.sin(phase) * _unit(rng.uniform(0, 2 * np.pi)) - shake + jitter[0, src]
        _draw(frames, pos, radius, rng, palette[2], W, H, wrap=False)

    return capture(frames, f, rng, u)[inverse]


def capture(frames: np.ndarray, f: Factors, rng: np.random.Generator, u: float) -> np.ndarray:
    """The camera's chain on a scene in [0, 1] (float32, modified): exposure, down-scaling (with its
    anti-alias blur), focus blur, sensor noise, then 8-bit quantisation. Rendered scenes and real
    footage (:mod:`ultravqa_ray.data.real`) go through the same chain."""
    np.clip(frames, 0, 1, out=frames)
    frames = _expose(frames, f.exposure)
    scale = 1.0 + (MAX_DOWNSCALE - 1.0) * f.downscale
    prefilter = 0.45 * scale if scale > 1.05 else 0.0
    frames = _blur(frames, float(np.hypot(f.blur * MAX_BLUR * u, prefilter)))
    if scale > 1.05:
        frames = _pixelate(frames, scale)
    if f.noise > 0:
        frames += rng.standard_normal(frames.shape, dtype=np.float32) * np.float32(f.noise * MAX_NOISE)
    return (np.clip(frames, 0, 1) * 255 + 0.5).astype(np.uint8)


def encode_clip(
    frames: np.ndarray,
    path: str | Path,
    fps: int | float | Fraction,
    crf: int = 18,
    gop: int = 16,
    preset: str = "veryfast",
) -> Path:
    """Write ``(T, H, W, 3)`` uint8 RGB frames as H.264 (libx264, yuv420p) MP4; H and W must be even.

    x264 runs single-threaded so the bytes depend only on the frames and settings.
    """
    path = Path(path)
    t, h, w, c = frames.shape
    if c != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    if h % 2 or w % 2:
        raise ValueError(f"yuv420p needs even frame sizes, got {w}x{h}")
    options = {"crf": str(crf), "preset": preset, "g": str(gop), "threads": "1", "bf": "0"}
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001), options=options)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def _unit(angle: float) -> np.ndarray:
    return np.array([np.cos(angle), np.sin(angle)], dtype=np.float32)


def _hsv(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """HSV (each in [0, 1]) to RGB, vectorised; returns (..., 3) float32."""
    k = (np.array([5.0, 3.0, 1.0]) + (h[..., None] % 1.0) * 6.0) % 6.0
    rgb = v[..., None] - v[..., None] * s[..., None] * np.clip(np.minimum(k, 4.0 - k), 0, 1)
    return rgb.astype(np.float32)


def _palette(rng: np.random.Generator, disharmony: float) -> np.ndarray:
    """Twelve colours: analogous and muted when harmonious, scattered and garish when not.

    Rows 0-1 are the ground colours, row 2 the subject, the rest other objects.
    """
    spread = (15.0 + 165.0 * disharmony) / 360.0
    hues = rng.uniform() + rng.uniform(-spread, spread, size=12)
    sat = np.clip(0.3 + 0.65 * disharmony + rng.uniform(-0.08, 0.08, size=12), 0, 1)
    val = rng.uniform(0.4, 0.75, size=12)
    val[2] = 0.85
    return _hsv(hues, sat, val)


def _noise_field(rng: np.random.Generator, H: int, W: int, beta: float) -> np.ndarray:
    """Periodic 1/f**beta noise, zero mean, unit sd, (H, W) float32."""
    fy = np.fft.fftfreq(H)[:, None]
    fx = np.fft.rfftfreq(W)[None, :]
    freq = np.hypot(fy, fx)
    freq[0, 0] = 1.0
    amp = freq**-beta
    amp[0, 0] = 0.0
    spec = amp * (rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape))
    field = np.fft.irfft2(spec, s=(H, W))
    return (field / field.std()).astype(np.float32)


def _ground_tile(rng, f: Factors, palette: np.ndarray, H: int, W: int, u: float) -> np.ndarray:
    """The world's ground (H, W, 3): two colours mixed by noise, textured by richness, plus clutter."""
    luma = _noise_field(rng, H, W, 1.0)
    mix = 1.0 / (1.0 + np.exp(-2.5 * _noise_field(rng, H, W, 1.6)))
    contrast = 0.45 + 0.55 * f.richness
    colour = palette[0] * (1 - f.richness * mix[..., None]) + palette[1] * (f.richness * mix[..., None])
    tile = colour * (1.0 + 0.3 * contrast * luma[..., None])
    n_specks = round(f.clutter * 80 * H * W / (128 * 128))
    if n_specks:
        centres = rng.uniform(0, 1, size=(n_specks, 2)) * (W, H)
        radii = rng.uniform(1.2, 2.4, size=n_specks) * u
        colours = _hsv(rng.uniform(size=n_specks), np.full(n_specks, 0.9), rng.uniform(0.3, 1.0, n_specks))
        tile = tile[None].astype(np.float32)  # a one-frame clip for _disc
        for centre, r, c in zip(centres, radii, colours, strict=True):
            _disc(tile, centre, float(r), c, W, H)
        tile = tile[0]
    return tile.astype(np.float32)


def _sky_tile(rng, palette: np.ndarray, H: int, W: int) -> tuple[np.ndarray, np.ndarray]:
    """Bright, desaturated sky colour (3,) and a faint smooth cloud texture (H, W, 1)."""
    base = (0.5 * palette[1] + 0.5 * 0.8).astype(np.float32)
    return base, 0.06 * _noise_field(rng, H, W, 2.0)[..., None]


def _shift(tile: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Periodic tile seen from camera offsets (S, 2) as (x, y): exact sub-pixel shift in Fourier space."""
    H, W, _ = tile.shape
    spec = np.fft.rfft2(tile, axes=(0, 1)).astype(np.complex64)
    fy = np.fft.fftfreq(H).astype(np.float32)[None, :, None]
    fx = np.fft.rfftfreq(W).astype(np.float32)[None, None, :]
    ox = offsets[:, 0, None, None].astype(np.float32)
    oy = offsets[:, 1, None, None].astype(np.float32)
    phase = np.exp(2j * np.pi * (fx * ox + fy * oy)).astype(np.complex64)
    return np.fft.irfft2(spec[None] * phase[..., None], s=(H, W), axes=(1, 2)).astype(np.float32)


def _draw(frames, pos, radius, rng, colour, W, H, wrap: bool) -> None:
    """Composite a shaded superellipse at per-frame centres ``pos`` (S, 2) into ``frames`` in place.

    Only a square patch around the centre is touched; patch indices wrap modulo the frame so
    they are unique, and without ``wrap`` the wrapped-around part is made transparent.
    """
    power = float(rng.choice([2.0, 4.0]))
    aspect = float(rng.uniform(0.75, 1.33))
    rx, ry = float(radius * np.sqrt(aspect)), float(radius / np.sqrt(aspect))
    half = min(int(np.ceil(max(rx, ry))) + 2, min(H, W) // 2 - 1)
    offs = np.arange(-half, half + 1)
    pos = pos.astype(np.float32)
    base = np.floor(pos).astype(int)  # (S, 2)
    cols, rows = base[:, 0, None] + offs, base[:, 1, None] + offs  # (S, P)
    dx = (cols - pos[:, 0, None]).astype(np.float32)[:, None, :] / np.float32(rx)  # (S, 1, P)
    dy = (rows - pos[:, 1, None]).astype(np.float32)[:, :, None] / np.float32(ry)  # (S, P, 1)
    dist = (np.abs(dx) ** power + np.abs(dy) ** power) ** (1.0 / power)
    alpha = np.clip((1.0 - dist) * np.float32(min(rx, ry)) + 0.5, 0, 1)
    if not wrap:
        inside = ((cols >= 0) & (cols < W))[:, None, :] & ((rows >= 0) & (rows < H))[:, :, None]
        alpha *= inside
    alpha = alpha[..., None]
    shade = (1.1 - 0.2 * (dx + dy))[..., None] * colour
    s_idx = np.arange(len(pos))[:, None, None]
    r_idx, c_idx = (rows % H)[:, :, None], (cols % W)[:, None, :]
    patch = frames[s_idx, r_idx, c_idx]
    frames[s_idx, r_idx, c_idx] = patch * (1 - alpha) + shade * alpha


def _disc(frames, centre, radius, colour, W, H) -> None:
    """A flat antialiased disc at a fixed centre, wrapped on the torus, composited in place."""
    half = int(np.ceil(radius)) + 1
    offs = np.arange(-half, half + 1)
    cols, rows = int(np.floor(centre[0])) + offs, int(np.floor(centre[1])) + offs
    dist = np.hypot((cols - centre[0])[None, :], (rows - centre[1])[:, None])
    alpha = np.clip(radius - dist + 0.5, 0, 1).astype(np.float32)[None, :, :, None]
    r_idx, c_idx = (rows % H)[:, None], (cols % W)[None, :]
    frames[:, r_idx, c_idx] = frames[:, r_idx, c_idx] * (1 - alpha) + colour * alpha


def _expose(frames: np.ndarray, exposure: float) -> np.ndarray:
    """Exposure curve: ``x ** g`` darkens (exposure < 0), ``1 - (1 - x) ** g`` washes out (> 0).

    ``g = 2 ** (MAX_EV * |exposure|)``; mean luminance rises monotonically with ``exposure``.
    """
    if exposure == 0:
        return frames
    g = np.float32(2.0 ** (MAX_EV * abs(exposure)))
    return frames**g if exposure < 0 else 1 - (1 - frames) ** g


def _blur(frames: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of each frame (reflect padding, exact Gaussian transfer function)."""
    if sigma < 0.3:
        return frames
    pad = int(3 * sigma) + 1
    padded = np.pad(frames, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    h, w = padded.shape[1:3]
    fy = np.fft.fftfreq(h).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(w).astype(np.float32)[None, :]
    transfer = np.exp(-2 * (np.pi * sigma) ** 2 * (fy**2 + fx**2)).astype(np.float32)
    spec = np.fft.rfft2(padded, axes=(1, 2)) * transfer[None, :, :, None]
    out = np.fft.irfft2(spec, s=(h, w), axes=(1, 2))
    return out[:, pad:-pad, pad:-pad].astype(np.float32)


def _pixelate(frames: np.ndarray, scale: float) -> np.ndarray:
    """Point-sample a (pre-filtered) frame at 1/scale resolution, then blow it up with nearest."""
    _, H, W, _ = frames.shape
    h, w = max(4, round(H / scale)), max(4, round(W / scale))
    rows = ((np.arange(h) + 0.5) * H / h).astype(int)
    cols = ((np.arange(w) + 0.5) * W / w).astype(int)
    small = frames[:, rows][:, :, cols]
    return small[:, np.arange(H) * h // H][:, :, np.arange(W) * w // W]
