"""Procedural motion clips for the synthetic dataset: numpy rendering of moving textured shapes.

Every clip shows two random objects (shape, colours, texture) on a random textured background
seen by a slowly drifting camera; the class is defined only by how the object(s) move. In
single-mover classes the second object stays still (a distractor), so object count, shape,
colour and texture carry no class information; the foreground mask covers the *moving*
objects only. Textures live in object coordinates, so they rotate and scale with the object.

Motion is sized for the `tiny` token grid: movers are large (their tokens are roughly a tenth
of all tokens) and move about a patch (8 px at 64x64) or more over every quarter of the clip,
while the camera drift is smooth (one low-frequency sine per axis, at most ~0.25 px between
frames), so no class's motion hides under it. The speeds scale with the frame size and the
number of frames (displacements are fractions of the frame side over the whole clip).

All frames are rendered at once from ``(T, S, S)`` coordinate grids, background included (so the
camera drift is sub-pixel and smooth); no per-pixel loops. :func:`plan_clip` draws every random
choice of a clip, :func:`render_plan` draws the pixels, :func:`mover_speed` and
:func:`camera_speed` report the motion that defines the class and the drift it must beat.
"""

from __future__ import annotations

from dataclasses import dataclass

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
# Object circumradius ranges as fractions of the frame side. Single movers and the still
# distractor share one range, so size says nothing about the class; the two objects of
# approach/separate are smaller to leave room for their travel.
_RADIUS = (0.17, 0.23)
_PAIR_RADIUS = (0.12, 0.15)
_CAMERA_AMPLITUDE = 0.75  # px, peak camera offset per axis
_CAMERA_CYCLES = (0.2, 0.6)  # sine cycles per clip: low-pass drift, never frame-to-frame shake


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


class _Background:
    """A random low-contrast texture, evaluated at any scene coordinates (fractions of the frame side)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.base = rng.uniform(30, 225, 3)
        self.other = np.clip(self.base + rng.uniform(-60, 60, 3), 0, 255)
        self.kind = int(rng.integers(4))
        if self.kind == 0:  # smooth colour noise: a coarse random grid, bilinearly interpolated
            self.cells = int(rng.integers(3, 7))
            self.grid = rng.random((self.cells + 2, self.cells + 2))
        elif self.kind == 1:  # stripes at a random angle
            self.angle, self.freq = rng.uniform(0, np.pi), rng.uniform(2, 6)
        elif self.kind == 2:  # checkerboard
            self.freq = rng.uniform(3, 8)
        else:  # linear gradient
            self.angle = rng.uniform(0, 2 * np.pi)

    @property
    def mean_colour(self) -> np.ndarray:
        """Rough average RGB (what object colours keep their distance from)."""
        return (self.base + self.other) / 2

    def paint(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """RGB float ``(..., 3)`` at scene coordinates ``x, y`` (0-1 across the frame, may overshoot)."""
        if self.kind == 0:
            gx = np.clip(x, 0.0, 1.0) * self.cells
            gy = np.clip(y, 0.0, 1.0) * self.cells
            x0, y0 = np.floor(gx).astype(np.int64), np.floor(gy).astype(np.int64)
            fx, fy = gx - x0, gy - y0
            g = self.grid
            mix = (g[y0, x0] * (1 - fy) * (1 - fx) + g[y0 + 1, x0] * fy * (1 - fx)
                   + g[y0, x0 + 1] * (1 - fy) * fx + g[y0 + 1, x0 + 1] * fy * fx)
        elif self.kind == 1:
            phase = x * np.cos(self.angle) + y * np.sin(self.angle)
            mix = (np.sin(2 * np.pi * self.freq * phase) > 0).astype(np.float32)
        elif self.kind == 2:
            mix = ((np.floor(self.freq * x) + np.floor(self.freq * y)) % 2).astype(np.float32)
        else:
            # Ramp across the unit square, 0 at one corner and 1 at the opposite one.
            c, s = np.cos(self.angle), np.sin(self.angle)
            lo = min(0.0, c) + min(0.0, s)
            mix = np.clip((x * c + y * s - lo) / (abs(c) + abs(s)), 0.0, 1.0)
        base = self.base.astype(np.float32)
        return base + (self.other - self.base).astype(np.float32) * mix[..., None].astype(np.float32)


def _trajectories(motion: str, rng: np.random.Generator, tau: np.ndarray, size: int) -> list[dict[str, np.ndarray]]:
    """Per-frame centre ``(T, 2)``, angle ``(T,)`` and radius ``(T,)`` of each moving object.

    ``tau`` runs from -0.5 to 0.5 over the clip; trajectories are symmetric around the clip
    middle so the mid-clip position/size distribution does not depend on the class.
    Displacements are fractions of ``size`` over the whole clip, so speed per frame grows as
    clips get shorter.
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
        travel = size * rng.uniform(0.42, 0.5)
        c = centre(radius + abs(d[0]) * travel / 2, radius + abs(d[1]) * travel / 2)
        return [{"pos": c + np.outer(tau * travel, d), "angle": angle0 * const, "radius": radius * const}]
    if motion.startswith("rotate_"):
        sign = 1.0 if motion == "rotate_cw" else -1.0  # +angle is clockwise on screen (y points down)
        # At most 10 degrees between frames: well below half of any shape's symmetry angle (30 deg
        # for the hexagon), so the direction of rotation is never aliased.
        total = min(rng.uniform(0.55, 0.8) * np.pi, np.deg2rad(10.0) * (t - 1))
        radius = size * rng.uniform(*_RADIUS)
        c = centre(radius, radius)
        return [{"pos": np.tile(c, (t, 1)), "angle": angle0 + sign * total * tau, "radius": radius * const}]
    if motion in ("grow", "shrink"):
        sign = 1.0 if motion == "grow" else -1.0
        factor = rng.uniform(3.5, 4.5)
        r_mid = size * rng.uniform(0.13, 0.16)
        radii = r_mid * factor ** (sign * tau)
        c = centre(radii.max(), radii.max())
        return [{"pos": np.tile(c, (t, 1)), "angle": angle0 * const, "radius": radii}]
    if motion in ("approach", "separate"):
        sign = -1.0 if motion == "approach" else 1.0
        r1, r2 = size * rng.uniform(*_PAIR_RADIUS, 2)
        near = (r1 + r2) * rng.uniform(0.9, 1.1)
        far = min(near + size * rng.uniform(0.4, 0.5), size - 2 * max(r1, r2) - 2)
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
        radius = size * rng.uniform(0.15, 0.19)
        orbit = size * rng.uniform(0.17, 0.21)
        sweep = min(rng.uniform(0.8, 1.2) * np.pi, np.deg2rad(20.0) * (t - 1))
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


def _camera_path(rng: np.random.Generator, num_frames: int) -> np.ndarray:
    """Smooth camera offset ``(T, 2)`` in pixels: one slow sine per axis, random phase and amplitude."""
    tau = np.linspace(0.0, 1.0, num_frames)[:, None]
    amplitude = rng.uniform(0.0, _CAMERA_AMPLITUDE, 2)
    cycles = rng.uniform(*_CAMERA_CYCLES, 2)
    phase = rng.uniform(0, 2 * np.pi, 2)
    return amplitude * np.sin(2 * np.pi * cycles * tau + phase)


@dataclass
class ClipPlan:
    """Every random choice of one clip: background, objects with their trajectories, camera path."""

    motion: str
    """The class."""
    size: int
    """Frame side in pixels."""
    background: _Background
    """The scene behind the objects."""
    layers: list[tuple[dict[str, np.ndarray], _Object, bool]]
    """``(trajectory, appearance, moving)`` back to front; trajectories in scene pixels."""
    camera: np.ndarray
    """``(T, 2)`` camera offset (x, y) in pixels; the scene appears shifted by minus this."""

    @property
    def num_frames(self) -> int:
        """Frames in the clip."""
        return len(self.camera)


def plan_clip(motion: str, num_frames: int, size: int, rng: np.random.Generator) -> ClipPlan:
    """Draw the background, objects, trajectories and camera path of a clip of class ``motion``."""
    if motion not in MOTIONS:
        raise ValueError(f"unknown motion {motion!r}; choose one of {MOTIONS}")
    if num_frames < 2 or size < 8:
        raise ValueError(f"need num_frames >= 2 and size >= 8, got {num_frames} and {size}")
    tau = np.linspace(-0.5, 0.5, num_frames)
    background = _Background(rng)
    movers = _trajectories(motion, rng, tau, size)
    bg_mean = background.mean_colour
    layers = [(traj, _Object(rng, bg_mean), True) for traj in movers]
    if len(layers) == 1:  # a still distractor, drawn behind the mover, keeps two objects in every clip
        layers.insert(0, (_still_trajectory(rng, size, num_frames), _Object(rng, bg_mean), False))
    return ClipPlan(motion, size, background, layers, _camera_path(rng, num_frames))


def _column(values: np.ndarray) -> np.ndarray:
    """Per-frame values ``(T,)`` as a float32 ``(T, 1, 1)`` column that broadcasts over pixels."""
    return np.asarray(values, dtype=np.float32)[:, None, None]


def _object_coords(traj: dict[str, np.ndarray], camera: np.ndarray, xs: np.ndarray, ys: np.ndarray,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Object coordinates ``(u, v)`` ``(T, S, S)`` of every pixel: undo camera, translation, rotation, scale."""
    cx, cy = _column(traj["pos"][:, 0] - camera[:, 0]), _column(traj["pos"][:, 1] - camera[:, 1])
    cos, sin, rad = _column(np.cos(traj["angle"])), _column(np.sin(traj["angle"])), _column(traj["radius"])
    dx, dy = xs[None] - cx, ys[None] - cy
    return (dx * cos + dy * sin) / rad, (-dx * sin + dy * cos) / rad


def render_plan(plan: ClipPlan) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of a planned clip: ``frames`` uint8 ``(T, S, S, 3)`` and foreground bool ``(T, S, S)``."""
    size, camera = plan.size, plan.camera
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    scene_x = (xs[None] + _column(camera[:, 0])) / size
    scene_y = (ys[None] + _column(camera[:, 1])) / size
    frames = plan.background.paint(scene_x, scene_y).astype(np.float32)  # (T, S, S, 3)
    foreground = np.zeros((plan.num_frames, size, size), dtype=bool)
    for traj, obj, moving in plan.layers:
        u, v = _object_coords(traj, camera, xs, ys)
        inside = _shape_mask(obj.shape, u, v)
        frames[inside] = obj.paint(u[inside], v[inside])  # texture only where the object is
        if moving:
            foreground |= inside
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8), foreground


def render_clip(
    motion: str, num_frames: int, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Render one clip of class ``motion``.

    Returns:
        ``frames`` uint8 ``(num_frames, size, size, 3)`` and ``foreground`` bool
        ``(num_frames, size, size)``: the pixels of the moving object(s) in each frame.
    """
    return render_plan(plan_clip(motion, num_frames, size, rng))


def mover_speed(plan: ClipPlan) -> np.ndarray:
    """Mean scene speed (px per frame) of the moving objects' visible pixels between frames ``t`` and ``t+1``.

    Each pixel of a mover at frame ``t`` is followed to where the same point of the object is
    at ``t + 1`` (translation, rotation and scaling together); the camera drift is left out, so
    this is the motion that defines the class. Returns ``(T - 1,)``.
    """
    size = plan.size
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    speeds = np.zeros(plan.num_frames - 1)
    counts = np.zeros(plan.num_frames - 1)
    still = np.zeros_like(plan.camera)
    for traj, obj, moving in plan.layers:
        if not moving:
            continue
        u, v = _object_coords(traj, still, xs, ys)
        inside = _shape_mask(obj.shape, u, v)[:-1]
        nxt = {k: val[1:] for k, val in traj.items()}
        cos, sin, rad = _column(np.cos(nxt["angle"])), _column(np.sin(nxt["angle"])), _column(nxt["radius"])
        uu, vv = u[:-1], v[:-1]
        x1 = _column(nxt["pos"][:, 0]) + rad * (uu * cos - vv * sin)
        y1 = _column(nxt["pos"][:, 1]) + rad * (uu * sin + vv * cos)
        step = np.hypot(x1 - xs[None], y1 - ys[None])
        speeds += (step * inside).sum(axis=(1, 2))
        counts += inside.sum(axis=(1, 2))
    return speeds / np.maximum(counts, 1)


def camera_speed(plan: ClipPlan) -> np.ndarray:
    """Camera displacement (px) between consecutive frames, ``(T - 1,)``."""
    return np.hypot(*np.diff(plan.camera, axis=0).T)
