"""
The scene model of the synthetic "aca_world": persons, vehicles, boards, shots and the cell modules
that place them (the sampling of whole shots and videos: :mod:`.sampling`).

A video is a sequence of *shots*; each shot is a fixed layout of vehicles, boards and people on
a 2 x 2 grid of cells (one *module* per cell: a vehicle with occupants, a board with audience, a
pair of people, or people walking/standing/lying alone). Only walkers move. Labels are never
written by the sampler: they are derived from the geometry of a key-frame snapshot by
:func:`~.rules.derive_relations` and :func:`~.rules.derive_labels` (:mod:`.rules`, documented in
``datasets/SYNTHETIC.md``), so sampler bugs cannot produce labels that contradict the rules.

Two classes are *indirect* (actor-context-actor, ACAR paper Sec. 1 / Fig. 1): "ride" (a passenger
rides only when ANOTHER person sits in the driver seat of the SAME vehicle) and "listen" (a person
facing a board listens only when ANOTHER person presents at the SAME board). The actor's own
sprite and its own relation to the object are identical in the positive and negative case.

Coordinates are pixels of a ``WIDTH`` x ``HEIGHT`` frame, x to the right, y down.
"""
from dataclasses import dataclass, field
from typing import Optional

__all__ = [
    "ClassSpec", "CLASSES", "POSES", "WIDTH", "HEIGHT", "FPS", "Person", "Vehicle", "Board",
    "Shot", "person_state",
    "LONG_RANGE_CLASS", "world_classes", "visible_persons",
]

# Frame geometry of the world (the layout constants below are tuned to it): 160 x 120 (4:3 like
# most AVA movies), 8 fps; key frames at every integer second.
WIDTH, HEIGHT, FPS = 160, 120, 8
CELL_W = WIDTH // 2
# Ground-line ranges (feet y) of the two grid rows; rows are far apart so that no rule (all need
# |dy| <= 6) can relate people of different rows.
ROW_GROUND = ((44, 54), (102, 112))


@dataclass(frozen=True)
class ClassSpec:
    """One action class: AVA-style id (1-based), name, group, and whether it is indirect."""

    id: int
    name: str
    group: str  # "pose" | "person_object" | "person_person"
    indirect: bool
    rule: str  # one-line statement of the labelling rule (see datasets/SYNTHETIC.md)
    long_range: bool = False  # evidence outside the clip (option world only)


CLASSES = (
    ClassSpec(1, "stand", "pose", False, "pose is stand (static upright)"),
    ClassSpec(2, "sit", "pose", False, "pose is sit (on a stool or a vehicle seat)"),
    ClassSpec(3, "walk", "pose", False, "pose is walk (moving, legs animated)"),
    ClassSpec(4, "lie", "pose", False, "pose is lie (horizontal on the ground)"),
    ClassSpec(5, "carry", "person_object", False, "holds an item"),
    ClassSpec(6, "drive", "person_object", False, "sits in the driver seat of a vehicle"),
    ClassSpec(7, "present", "person_object", False, "points at an adjacent board"),
    ClassSpec(8, "ride", "person_object", True,
              "sits in the passenger seat of a vehicle whose driver seat is occupied"),
    ClassSpec(9, "talk_to", "person_person", False,
              "stands face to face with another standing person close by"),
    ClassSpec(10, "listen", "person_person", True,
              "faces a board at which another person presents"),
)
POSES = tuple(c.name for c in CLASSES if c.group == "pose")
# Option of the world (``write_world(long_range=True)``, ``--long-range``; the default world does
# not have it): a class whose evidence lies outside the clip. A "parting" pair talks at the start
# of the shot, then one of the two leaves the scene; the one who stays is "left_behind" at every
# later key frame, where the clip (+-1 s) shows only a person standing alone - exactly as a
# person who never had a partner.
LONG_RANGE_CLASS = ClassSpec(
    11, "left_behind", "person_person", False,
    "stands where a talk partner of this shot has left the scene before the key frame", True)
# The partner is in the scene on frames [shot start, shot start + LEAVE_FRAME): it talks at the
# shot's first key frame (t = 1 s) and is gone from frame 9 on, so at t = 2 s it shows only on the
# clip's first frame and from t = 3 s on the evidence is >= 2 s before the key frame.
LEAVE_FRAME = FPS + 1


def world_classes(long_range: bool = False) -> tuple:
    """The class list of a world: ``CLASSES``, plus ``LONG_RANGE_CLASS`` with the option."""
    return CLASSES + (LONG_RANGE_CLASS,) if long_range else CLASSES

# Sprite proportions in units of the person's scale (renderer uses the same numbers).
HEAD_R, TORSO_W, TORSO_H, LEG_H, ARM_REACH = 3.0, 8.0, 9.0, 8.0, 6.0
# Rule thresholds (px). Same ground line: |dy| <= SAME_ROW_DY; a person faces a board when the
# board's near edge is at most FACE_BOARD_DIST ahead; presenters touch the board (gap <= reach).
SAME_ROW_DY, FACE_BOARD_DIST, POINT_DIST = 6.0, 56.0, 12.0
# the sampler seats listeners at most this far from the board (inside FACE_BOARD_DIST)
LISTEN_PLACE_DIST = 48.0
TALK_MIN_DX, TALK_MAX_DX, TALK_DY = 6.0, 26.0, 4.0

SHIRTS = ((200, 40, 40), (40, 90, 200), (40, 160, 60), (220, 180, 30), (150, 60, 170),
          (230, 110, 20), (20, 160, 170), (120, 120, 120))
VEHICLE_COLORS = ((70, 70, 160), (160, 60, 60), (60, 130, 80), (170, 150, 60), (90, 90, 90))


@dataclass
class Person:
    """A person of a shot. ``x`` is the body centre; ``y`` the feet line (free persons) or the
    hip line (vehicle occupants); walkers move between ``x_range`` at ``speed`` px/frame."""

    pid: int
    x: float
    y: float
    scale: float
    pose: str
    facing: int  # +1 looks right, -1 looks left (walkers: at the shot's first frame)
    shirt: tuple
    arm: str = "down"  # "down" | "point"
    holding: bool = False
    seat: Optional[tuple] = None  # (vehicle id, "driver" | "passenger")
    speed: float = 0.0
    x_range: tuple = (0.0, 0.0)
    stool: bool = False
    leaves_at: Optional[int] = None  # first frame without this person (long-range option)
    partner: Optional[int] = None  # pid of the partner who leaves (long-range option)


def visible_persons(persons: list, frame: int) -> list:
    """The persons in the scene at ``frame`` (all of them in the default world)."""
    return [p for p in persons if p.leaves_at is None or frame < p.leaves_at]


@dataclass
class Vehicle:
    """Side view of a car: body [x1, x1 + length] standing on ``ground``, front towards ``facing``."""

    vid: int
    x1: float
    ground: float
    length: float
    height: float
    facing: int
    color: tuple
    # relation world's buses: seat positions as fractions of the length from the rear end,
    # driver first (``relation_rows.bus_seat_fracs``); empty: the car layout below
    seat_fracs: tuple = ()

    @property
    def wheel_r(self) -> float:
        return 0.22 * self.height

    @property
    def body_top(self) -> float:
        return self.ground - self.wheel_r - 0.55 * self.height

    @property
    def num_seats(self) -> int:
        # long vehicles (>= 54 px) have a second passenger seat: a negative "ride" can then have
        # another occupant right next to it (who is not in the driver seat)
        if self.seat_fracs:
            return len(self.seat_fracs)
        return 3 if self.length >= 54 else 2

    def seat_xs(self) -> list:
        """x of the seats, driver first (at the front window), then passengers front to back.
        Spacing >= 0.26 * length (>= 14 px) keeps torsos (<= 9.2 px wide) apart, so no seat's box
        contains another occupant's sprite."""
        fracs = self.seat_fracs or ((0.70, 0.32) if self.num_seats == 2 else (0.76, 0.50, 0.24))
        return [self.x1 + (fr if self.facing > 0 else 1.0 - fr) * self.length for fr in fracs]

    def seat_x(self, role: str) -> float:
        """x of the driver seat or of the (first) passenger seat."""
        return self.seat_xs()[0 if role == "driver" else 1]

    def wheel_x(self) -> float:
        """x of the steering wheel, in front of the driver seat (inside the cabin of a bus)."""
        if self.seat_fracs:
            return self.seat_x("driver") + self.facing * 5.0
        return self.seat_x("driver") + self.facing * 0.15 * self.length

    def box(self) -> list:
        return [self.x1, self.body_top - 19.0, self.x1 + self.length, self.ground]


@dataclass
class Board:
    """A presentation board: a panel ``width`` x ``height`` on two legs standing on ``ground``."""

    bid: int
    cx: float
    ground: float
    width: float
    height: float

    def box(self) -> list:
        return [self.cx - self.width / 2, self.ground - 10.0 - self.height,
                self.cx + self.width / 2, self.ground]


@dataclass
class Shot:
    """A fixed layout shown on frames [start, end) of a video."""

    start: int
    end: int
    persons: list = field(default_factory=list)
    vehicles: list = field(default_factory=list)
    boards: list = field(default_factory=list)
    background: tuple = (200, 200, 190)
    grounds: tuple = (50, 108)  # floor line of each grid row (for the floor stripe)
    # the rules' face distance (``FACE_BOARD_DIST``; the relation world's is longer)
    face_board_dist: float = FACE_BOARD_DIST


def person_state(p: Person, frame: int, shot: Shot) -> tuple:
    """
    Position of a person at a video frame.

    Returns:
        tuple: (x, facing, phase): walkers bounce between ``x_range`` (triangle wave) and face
        their direction of motion; phase (0/1) alternates the legs every 2 frames.
    """
    if p.pose != "walk":
        return p.x, p.facing, 0
    lo, hi = p.x_range
    span = hi - lo
    # unfold the bounce: distance travelled from lo along a loop of length 2 * span
    d = (p.x - lo if p.facing > 0 else 2 * span - (p.x - lo)) + p.speed * (frame - shot.start)
    d = d % (2 * span)
    if d <= span:
        return lo + d, 1, (frame // 2) % 2
    return hi - (d - span), -1, (frame // 2) % 2


# ----------------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------------
class _Ids:
    def __init__(self):
        self.person = 0
        self.vehicle = 0
        self.board = 0

    def next(self, kind: str) -> int:
        v = getattr(self, kind)
        setattr(self, kind, v + 1)
        return v


def _new_person(rng, ids, **kw) -> Person:
    kw.setdefault("scale", float(rng.uniform(0.9, 1.15)))
    kw.setdefault("shirt", SHIRTS[int(rng.integers(len(SHIRTS)))])
    return Person(pid=ids.next("person"), **kw)


def _vehicle_module(rng, ids, x0: float, ground: float, shot: Shot) -> None:
    length = float(rng.uniform(44, 64))
    facing = int(rng.choice([-1, 1]))
    bystander = rng.random() < 0.4  # distractor: stands outside at the driver's end
    room = CELL_W - 4 - length - (13 if bystander else 0)
    x1 = x0 + 2 + float(rng.uniform(0, max(room, 0)))
    if bystander and facing < 0:
        x1 += 13
    v = Vehicle(ids.next("vehicle"), x1, ground, length, float(rng.uniform(16, 20)), facing,
                VEHICLE_COLORS[int(rng.integers(len(VEHICLE_COLORS)))])
    shot.vehicles.append(v)
    hip = v.body_top + 3.0  # legs and hips are hidden by the body drawn in front
    for i, x in enumerate(v.seat_xs()):
        # driver seat occupied half of the time, each passenger seat 70%
        if rng.random() < (0.5 if i == 0 else 0.7):
            role = "driver" if i == 0 else "passenger"
            shot.persons.append(_new_person(rng, ids, x=x, y=hip, pose="sit", facing=facing,
                                            seat=(v.vid, role)))
    if bystander:
        front = v.x1 + v.length if facing > 0 else v.x1
        shot.persons.append(_new_person(rng, ids, x=front + facing * 7.0, y=ground, pose="stand",
                                        facing=int(rng.choice([-1, 1]))))


def _board_module(rng, ids, x0: float, ground: float, shot: Shot) -> None:
    # Local axis u: the board occupies u in [0, w]; the audience is at u > w and faces -u.
    d = int(rng.choice([-1, 1]))  # +1: audience to the right of the board
    w = float(rng.uniform(12, 16))
    presenter = rng.random() < 0.5
    presenter_far = presenter and rng.random() < 0.5  # behind the board, facing the audience
    bystander = (not presenter) and rng.random() < 0.5  # behind the board, facing away
    members = []  # (u of body centre, facing along u, kind)
    s_p = float(rng.uniform(0.9, 1.15))
    reach = (TORSO_W / 2 + ARM_REACH) * s_p - 1.0  # hand touches the panel edge
    if presenter_far or bystander:
        members.append((-reach, +1 if presenter_far else -1, "presenter" if presenter else "by"))
    u = w
    if presenter and not presenter_far:
        members.append((w + reach, -1, "presenter"))
        u = w + 2 * reach
    for _ in range(int(rng.integers(1, 3))):
        u_c = u + float(rng.uniform(3, 10)) + 7.0  # 7: half a seated listener (thigh + stool)
        if u_c - w > LISTEN_PLACE_DIST:
            break
        members.append((u_c, -1, "sit" if rng.random() < 0.5 else "stand"))
        u = u_c + 6.0
    # keep the module inside its cell: drop far listeners first
    while len(members) > 1 and (max(m[0] for m in members) + 7
                                - min([0.0] + [m[0] - 7 for m in members]) > CELL_W - 4):
        members.pop()
    u_min = min([0.0] + [m[0] - 7 for m in members])
    u_max = max([w] + [m[0] + 7 for m in members])
    extent = u_max - u_min
    slack = max(CELL_W - 4 - extent, 0.0)
    start = x0 + 2 + float(rng.uniform(0, slack))
    to_x = (lambda uu: start + (uu - u_min)) if d > 0 else (lambda uu: start + (u_max - uu))
    b = Board(ids.next("board"), to_x(w / 2), ground, w, float(rng.uniform(14, 18)))
    shot.boards.append(b)
    for u_c, f, kind in members:
        kw = dict(x=to_x(u_c), y=ground, facing=f * d)
        if kind == "presenter":
            shot.persons.append(_new_person(rng, ids, pose="stand", arm="point", scale=s_p, **kw))
        elif kind == "by":
            shot.persons.append(_new_person(rng, ids, pose="stand", **kw))
        else:
            shot.persons.append(_new_person(rng, ids, pose=kind, stool=(kind == "sit"), **kw))


def _pair_module(rng, ids, x0: float, ground: float, shot: Shot) -> None:
    dx = float(rng.uniform(12, 22))
    xa = x0 + 10 + float(rng.uniform(0, CELL_W - 20 - dx))
    mode = rng.choice(["talk", "talk", "talk", "same", "back"])
    fa, fb = {"talk": (1, -1), "same": (1, 1), "back": (-1, 1)}[str(mode)]
    if rng.random() < 0.5:  # mirror so that no side is privileged
        fa, fb = -fb, -fa
    for x, f in ((xa, fa), (xa + dx, fb)):
        shot.persons.append(_new_person(rng, ids, x=x, y=ground, pose="stand", facing=f,
                                        holding=bool(rng.random() < 0.2)))


def _solo_module(rng, ids, x0: float, ground: float, shot: Shot) -> None:
    for i in range(int(rng.integers(1, 3))):
        y = ground - 8.0 * i  # the second person stands further back: never a talk pair
        kind = str(rng.choice(["walk", "walk", "walk_carry", "stand_carry", "stand", "lie", "lie"]))
        pose = kind.split("_")[0]
        lo, hi = x0 + 8.0, x0 + CELL_W - 8.0
        x = float(rng.uniform(lo + 4, hi - 4))
        shot.persons.append(_new_person(
            rng, ids, x=x, y=y, pose=pose, facing=int(rng.choice([-1, 1])),
            holding=kind.endswith("carry"), speed=float(rng.uniform(1.0, 2.0)) if pose == "walk" else 0.0,
            x_range=(lo, hi)))


def _parting_module(rng, ids, x0: float, ground: float, shot: Shot) -> None:
    """Long-range option: a person standing alone at the key frames; with p = 0.5 a talk partner
    stood face to face with it at the start of the shot and left (``LEAVE_FRAME``)."""
    dx = float(rng.uniform(12, 22))
    xa = x0 + 10 + float(rng.uniform(0, CELL_W - 20 - dx))
    f = int(rng.choice([-1, 1]))
    # the stayer's own parameters are drawn first, the same way in both cases
    stayer = _new_person(rng, ids, x=xa if f > 0 else xa + dx, y=ground, pose="stand", facing=f)
    shot.persons.append(stayer)
    if rng.random() < 0.5:
        partner = _new_person(rng, ids, x=xa + dx if f > 0 else xa, y=ground, pose="stand",
                              facing=-f, leaves_at=shot.start + LEAVE_FRAME)
        stayer.partner = partner.pid
        shot.persons.append(partner)


_MODULES = (_vehicle_module, _board_module, _pair_module, _solo_module)
# Vehicles and boards dominate so that every video has several instances of the indirect
# classes and of their negatives (vehicle without driver, board without presenter).
_MODULE_P = (0.32, 0.32, 0.16, 0.20)
# Long-range option: a parting module in a quarter of the cells, the others scaled down.
_MODULES_LR = _MODULES + (_parting_module,)
_MODULE_P_LR = tuple(0.75 * p for p in _MODULE_P) + (0.25,)
