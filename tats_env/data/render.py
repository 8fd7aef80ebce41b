"""Procedural motion clips for the synthetic dataset: numpy rendering of moving textured shapes.

Every clip shows two random objects (shape, colours, texture) on a random textured background
under a small camera shake; the class is defined only by how the object(s) move. In
single-mover classes the second object stays still (a distractor), so object count, shape,
colour and texture carry no class information; the foreground mask covers the *moving*
objects only. Textures live in object coordinates, so they rotate and scale with the object.

All frames are rendered at once from ``(T, S, S)`` coordinate grids; no per-pixel loops.
"""

from __future__ import annotations

import numpy as np

MOTIONS: tuple[str, ...] = (
    "translate_right", "translate_left", "translate_up", "translate_down",
    "rotate_cw", "rotate_ccw", "grow", "shrink",
    "approach", "separate", "orbit_cw", "orbit_ccw",
    "translate_up_right", "translate_down_left", "translate_up_left", "translate_down_right",
)
"""Motion classes in label order; a dataset with ``num_classes = k`` uses the first k."""

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "hexagon", "star", "ellipse", "cross")
TEXTURES: tuple[str, ...] = ("solid", "stripes", "checker", "noise")

_DIRECTIONS: dict[str, tuple[float, float]] = {
    "right": (1.0, 0.0), "left": (-1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0),
    "up_right": (1.0, -1.0), "down_left": (-1.0, 1.0), "up_left": (-1.0, -1.0), "down_right": (1.0, 1.0),
}
_JITTER = 2  # camera shake: at most this many pixels in x and y
_RADIUS = (0.09, 0.15)  # object circumradius range as a fraction of the frame side, for every class


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside-test of a unit-size shape (circumradius ~1) in object coordinates."""
    if shape == "circle":
        return u * u + v * v <= 1.0
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.8
    if shape == "ellipse":
        return u * u + (v / 0.55) ** 2 <= 1.0
    if shape == "cross":
        au, av = np.abs(u), np.abs(v)
        return ((au <= 0.35) & (av <= 1.0)) | ((au <= 1.0) & (av <= 0.35))
    r, phi = np.hypot(u, v), np.arctan2(v, u)
    if shape in ("triangle", "hexagon"):
        n = 3 if shape == "triangle" else 6
        sector = 2 * np.pi / n
        return r * np.cos(np.mod(phi, sector) - sector / 2) <= np.cos(np.pi / n)
    if shape == "star":
        sector = 2 * np.pi / 5
        tip = np.abs(np.mod(phi, sector) / sector - 0.5) * 2.0  # 1 at the points, 0 between
        return r <= 0.45 + 0.55 * tip
    raise ValueError(f"unknown shape {shape!r}")


def _random_colour(rng: np.random.Generator, avoid: np.ndarray | None = None, min_dist: float = 90.0) -> np.ndarray:
    """A random RGB colour (float 0-255), at least ``min_dist`` away from ``avoid`` if possible."""
    colour = rng.uniform(0, 255, 3)
    for _ in range(20):
        if avoid is None or np.linalg.norm(colour - avoid) >= min_dist:
            break
        colour = rng.uniform(0, 255, 3)
    return colour


class _Object:
    """Appearance of one object: shape, two colours and a texture in object coordinates."""

    def __init__(self, rng: np.random.Generator, background: np.ndarray) -> None:
        self.shape = SHAPES[int(rng.integers(len(SHAPES)))]
        self.texture = TEXTURES[int(rng.integers(len(TEXTURES)))]
        if self.shape == "circle" and self.texture == "solid":
            # A plain disc would not show rotation; excluded in every class so that its absence
            # does not single out the rotation classes.
            self.texture = "stripes"
        self.c1 = _random_colour(rng, background)
        self.c2 = _random_colour(rng, self.c1, 70.0)
        self.freq = rng.uniform(1.5, 3.0)
        self.phase = rng.uniform(0, 2 * np.pi)
        self.cells = rng.random((6, 6))

    def paint(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """RGB values ``(..., 3)`` of the texture at object coordinates ``(u, v)``."""
        if self.texture == "solid":
            mix = np.zeros_like(u)
        elif self.texture == "stripes":
            mix = (np.sin(np.pi * self.freq * u + self.phase) > 0).astype(np.float32)
        elif self.texture == "checker":
            mix = ((np.floor(self.freq * u) + np.floor(self.freq * v)) % 2).astype(np.float32)
        else:
            iu = np.clip(((u + 1) * 3).astype(np.int64), 0, 5)
            iv = np.clip(((v + 1) * 3).astype(np.int64), 0, 5)
            mix = self.cells[iv, iu]
        return self.c1 * (1 - mix[..., None]) + self.c2 * mix[..., None]


def _background(rng: np.random.Generator, side: int) -> np.ndarray:
    """A random low-contrast textured background ``(side, side, 3)`` float 0-255."""
    base = rng.uniform(30, 225, 3)
    other = np.clip(base + rng.uniform(-60, 60, 3), 0, 255)
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
    kind = int(rng.integers(4))
    if kind == 0:  # smooth colour noise: a coarse random grid, bilinearly upsampled
        cells = int(rng.integers(3, 7))
        grid = rng.random((cells + 1, cells + 1))
        gy, gx = y * cells, x * cells
        y0, x0 = np.floor(gy).astype(np.int64), np.floor(gx).astype(np.int64)
        fy, fx = gy - y0, gx - x0
        mix = (grid[y0, x0] * (1 - fy) * (1 - fx) + grid[y0 + 1, x0] * fy * (1 - fx)
               + grid[y0, x0 + 1] * (1 - fy) * fx + grid[y0 + 1, x0 + 1] * fy * fx)
    elif kind == 1:  # stripes at a random angle
        angle = rng.uniform(0, np.pi)
        mix = (np.sin(2 * np.pi * rng.uniform(2, 6) * (x * np.cos(angle) + y * np.sin(angle))) > 0) * 1.0
    elif kind == 2:  # checkerboard
        n = rng.uniform(3, 8)
        mix = (np.floor(n * x) + np.floor(n * y)) % 2
    else:  # linear gradient
        angle = rng.uniform(0, 2 * np.pi)
        ramp = x * np.cos(angle) + y * np.sin(angle)
        mix = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    return base * (1 - mix[..., None]) + other * mix[..., None]


def _trajectories(motion: str, rng: np.random.Generator, tau: np.ndarray, size: int) -> list[dict[str, np.ndarray]]:
    """Per-frame centre ``(T, 2)``, angle ``(T,)`` and radius ``(T,)`` of each moving object.

    ``tau`` runs from -0.5 to 0.5 over the clip; trajectories are symmetric around the clip
    middle so the mid-clip position/size distribution does not depend on the class.
    """
    t = len(tau)
    angle0 = rng.uniform(0, 2 * np.pi)
    const = np.ones(t)

    def centre(extent_x: float, extent_y: float) -> np.ndarray:
        lo_x, lo_y = min(extent_x, size / 2), min(extent_y, size / 2)
        return np.array([rng.uniform(lo_x, size - lo_x), rng.uniform(lo_y, size - lo_y)])

    if motion.startswith("translate_"):
        d = np.array(_DIRECTIONS[motion[len("translate_"):]])
        d /= np.linalg.norm(d)
        radius = size * rng.uniform(*_RADIUS)
        travel = size * rng.uniform(0.3, 0.5)
        c = centre(radius + abs(d[0]) * travel / 2, radius + abs(d[1]) * travel / 2)
        return [{"pos": c + np.outer(tau * travel, d), "angle": angle0 * const, "radius": radius * const}]
    if motion.startswith("rotate_"):
        sign = 1.0 if motion == "rotate_cw" else -1.0  # +angle is clockwise on screen (y points down)
        total = min(rng.uniform(0.6, 1.2) * np.pi, np.deg2rad(10.0) * (t - 1))
        radius = size * rng.uniform(*_RADIUS)
        c = centre(radius, radius)
        return [{"pos": np.tile(c, (t, 1)), "angle": angle0 + sign * total * tau, "radius": radius * const}]
    if motion in ("grow", "shrink"):
        sign = 1.0 if motion == "grow" else -1.0
        factor = rng.uniform(1.8, 2.6)
        r_mid = size * rng.uniform(*_RADIUS)
        radii = r_mid * factor ** (sign * tau)
        c = centre(radii.max(), radii.max())
        return [{"pos": np.tile(c, (t, 1)), "angle": angle0 * const, "radius": radii}]
    if motion in ("approach", "separate"):
        sign = -1.0 if motion == "approach" else 1.0
        r1, r2 = size * rng.uniform(*_RADIUS, 2)
        near = (r1 + r2) * rng.uniform(1.0, 1.3)
        far = near + size * rng.uniform(0.25, 0.4)
        dist = (near + far) / 2 + sign * (far - near) * tau
        axis_angle = rng.uniform(0, 2 * np.pi)
        axis = np.array([np.cos(axis_angle), np.sin(axis_angle)])
        c = centre(abs(axis[0]) * far / 2 + max(r1, r2), abs(axis[1]) * far / 2 + max(r1, r2))
        return [
            {"pos": c - np.outer(dist / 2, axis), "angle": angle0 * const, "radius": r1 * const},
            {"pos": c + np.outer(dist / 2, axis), "angle": rng.uniform(0, 2 * np.pi) * const, "radius": r2 * const},
        ]
    if motion in ("orbit_cw", "orbit_ccw"):
        sign = 1.0 if motion == "orbit_cw" else -1.0
        radius = size * rng.uniform(*_RADIUS)
        orbit = size * rng.uniform(0.16, 0.26)
        sweep = min(rng.uniform(0.8, 1.4) * np.pi, np.deg2rad(20.0) * (t - 1))
        theta = rng.uniform(0, 2 * np.pi) + sign * sweep * tau
        c = centre(orbit + radius, orbit + radius)
        pos = c + orbit * np.stack([np.cos(theta), np.sin(theta)], axis=1)
        return [{"pos": pos, "angle": angle0 * const, "radius": radius * const}]
    raise ValueError(f"unknown motion {motion!r}; choose one of {MOTIONS}")


def _still_trajectory(rng: np.random.Generator, size: int, num_frames: int) -> dict[str, np.ndarray]:
    """A motionless object somewhere in the frame (the distractor of single-mover classes)."""
    radius = size * rng.uniform(*_RADIUS)
    spot = rng.uniform(radius, size - radius, 2)
    ones = np.ones(num_frames)
    return {"pos": np.tile(spot, (num_frames, 1)), "angle": rng.uniform(0, 2 * np.pi) * ones, "radius": radius * ones}


def _column(values: np.ndarray) -> np.ndarray:
    """Per-frame values ``(T,)`` as a float32 ``(T, 1, 1)`` column that broadcasts over pixels."""
    return np.asarray(values, dtype=np.float32)[:, None, None]


def render_clip(
    motion: str, num_frames: int, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Render one clip of class ``motion``.

    Returns:
        ``frames`` uint8 ``(num_frames, size, size, 3)`` and ``foreground`` bool
        ``(num_frames, size, size)``: the pixels of the moving object(s) in each frame.
    """
    if motion not in MOTIONS:
        raise ValueError(f"unknown motion {motion!r}; choose one of {MOTIONS}")
    tau = np.linspace(-0.5, 0.5, num_frames)
    side = size + 2 * _JITTER
    background = _background(rng, side).astype(np.float32)
    movers = _trajectories(motion, rng, tau, size)
    bg_mean = background.mean(axis=(0, 1))
    layers = [(traj, _Object(rng, bg_mean), True) for traj in movers]
    if len(layers) == 1:  # a still distractor, drawn behind the mover, keeps two objects in every clip
        layers.insert(0, (_still_trajectory(rng, size, num_frames), _Object(rng, bg_mean), False))
    shake = np.clip(np.round(rng.normal(0.0, 0.7, (num_frames, 2))), -_JITTER, _JITTER).astype(np.int64)

    # Background: one crop of the oversized canvas per frame, shifted by the camera shake.
    rows = _JITTER + shake[:, 1, None] + np.arange(size)[None, :]
    cols = _JITTER + shake[:, 0, None] + np.arange(size)[None, :]
    frames = background[rows[:, :, None], cols[:, None, :]]  # (T, S, S, 3)
    foreground = np.zeros((num_frames, size, size), dtype=bool)

    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    for traj, obj, moving in layers:
        # Object coordinates per frame: undo the shake, the translation, the rotation and the scale.
        cx, cy = _column(traj["pos"][:, 0] - shake[:, 0]), _column(traj["pos"][:, 1] - shake[:, 1])
        cos, sin, rad = _column(np.cos(traj["angle"])), _column(np.sin(traj["angle"])), _column(traj["radius"])
        dx, dy = xs[None] - cx, ys[None] - cy
        u = (dx * cos + dy * sin) / rad
        v = (-dx * sin + dy * cos) / rad
        inside = _shape_mask(obj.shape, u, v)
        frames[inside] = obj.paint(u[inside], v[inside])  # texture only where the object is
        if moving:
            foreground |= inside
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8), foreground
