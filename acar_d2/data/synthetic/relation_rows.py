"""
Row layouts of the *relation world* (``write_world(relation=True)``, ``--relation``;
datasets/SYNTHETIC.md "Option: a world where only actor-context-actor relations decide").

The default world fills each grid row with two independent modules. Here a row is one wide scene
(160 px) built so that the evidence of an indirect class lies OUTSIDE the receptive field of the
actor's RoI feature (``ROI_RF_MARGIN``: box +- 50.2 px with the relation benchmark's backbone),
and so that the first-order cue of the class appears as often in negatives as in positives:

* **convoy** - a bus and a car of the SAME colour, nose to tail, facing the same way. Only the
  bus's rear seats, at least ``FAR_SEAT`` px behind its driver seat, take passengers: a passenger
  rides only if the bus's own driver seat (outside its RoI's receptive field) is occupied; the
  car's driver, further ahead and facing the same way, is always there ("a passenger beside
  another vehicle's driver").
* **board pair** - two boards one behind the other on the listeners' line of sight, the listeners
  ``FAR_LISTEN`` px from the near board (outside their RoIs' receptive field; the relation world
  counts a board as faced up to ``REL_FACE_BOARD_DIST``); one presenter, facing the listeners,
  points either at the near board (the listeners listen) or at the far board (they do not:
  "somebody facing another board").

A shot of the relation world gives its two rows the same kind half of the time (two convoys or
two board pairs), so that "is there a bus driver / a presenter in the frame" does not answer for
a given actor: the linking object of its own row must. Its other rows hold only pair and solo
cells (no vehicle or board modules), so every ride and listen box of the world is a far one.

Labels still come only from :mod:`.rules` (the same rules as the default world, with the face
distance ``REL_FACE_BOARD_DIST``).
"""
from .scene import ARM_REACH, CELL_W, TORSO_W, VEHICLE_COLORS, WIDTH, Board, Vehicle

__all__ = ["convoy_row", "board_pair_row", "bus_seat_fracs", "ROI_RF_MARGIN", "FAR_SEAT",
           "FAR_LISTEN", "REL_FACE_BOARD_DIST", "relation_row_kinds"]

# Receptive field of one RoI feature of the relation benchmark's backbone (SlowFast R10, res5
# undilated at stride 1: 75 input px; datasets/SYNTHETIC.md) in frame px, past each side of the
# box: half the RF (37.5 input px) plus one cell of RoIAlign's bilinear reach (16 input px), at
# the clip scale 128 / 120.
ROI_RF_MARGIN = (75 / 2 + 16) * 120 / 128  # 50.16 px
# A passenger seat is used only this far (centre to centre) behind the driver seat: the seated
# boxes are <= 13 px wide, so the driver's box starts >= FAR_SEAT - 13 > ROI_RF_MARGIN px past
# the passenger's box.
FAR_SEAT = 64.0
# Listeners stand or sit FAR_LISTEN px (body centre to near board edge) from the near board:
# their boxes are <= 7 px wide on the board side, so the board starts > ROI_RF_MARGIN past them.
FAR_LISTEN = (58.0, 70.0)
REL_FACE_BOARD_DIST = 74.0

# Bus: driver seat BUS_DRIVER_GAP px behind the front end, passenger seats every ~15 px back to
# BUS_REAR_GAP px before the rear end (>= 14 px apart, so no box holds another occupant).
BUS_DRIVER_GAP, BUS_REAR_GAP, BUS_SEAT_PITCH = 9.0, 8.0, 15.0


def bus_seat_fracs(length: float) -> tuple:
    """Seat positions of a bus as fractions of its length from the rear, driver first."""
    n = max(1, int((length - BUS_DRIVER_GAP - BUS_REAR_GAP) // BUS_SEAT_PITCH))
    pitch = (length - BUS_DRIVER_GAP - BUS_REAR_GAP) / n
    front = length - BUS_DRIVER_GAP
    return tuple((front - k * pitch) / length for k in range(n + 1))


def convoy_row(rng, ids, ground: float, shot, new_person) -> None:
    """A bus (82-100 px) and a car (40-46 px) of one colour, 3-6 px apart, both facing ``f``,
    the car in front. Bus driver p = 0.5; each far passenger seat (>= ``FAR_SEAT`` behind the
    driver) p = 0.6, at least one passenger; the car always has its driver and no passenger, so
    a bus passenger without its own driver (negative) always has another vehicle's driver
    ahead: hard negatives are as frequent as positives."""
    f = int(rng.choice([-1, 1]))
    color = VEHICLE_COLORS[int(rng.integers(len(VEHICLE_COLORS)))]
    car_len, gap = float(rng.uniform(40, 46)), float(rng.uniform(3, 6))
    bus_len = float(rng.uniform(82, min(100.0, WIDTH - 8 - car_len - gap)))
    total = bus_len + gap + car_len
    left = 4 + float(rng.uniform(0, max(WIDTH - 8 - total, 0)))
    height = float(rng.uniform(16, 20))
    if f > 0:  # bus on the left, car ahead on the right
        bus_x1, car_x1 = left, left + bus_len + gap
    else:
        car_x1, bus_x1 = left, left + car_len + gap
    bus = Vehicle(ids.next("vehicle"), bus_x1, ground, bus_len, height, f, color,
                  seat_fracs=bus_seat_fracs(bus_len))
    car = Vehicle(ids.next("vehicle"), car_x1, ground, car_len, height, f, color)
    shot.vehicles += [bus, car]
    hip = bus.body_top + 3.0
    bus_seats = bus.seat_xs()
    far = [abs(x - bus_seats[0]) >= FAR_SEAT for x in bus_seats[1:]]
    assert any(far), bus_len  # the rear seat of an 82+ px bus is >= 64 px behind the driver
    taken = [ok and rng.random() < 0.6 for ok in far]
    if not any(taken):
        taken[max(i for i, ok in enumerate(far) if ok)] = True
    occupied = [rng.random() < 0.5] + taken
    for (v, xs, occ) in ((bus, bus_seats, occupied),
                         (car, car.seat_xs(), [True, False])):
        for i, (x, o) in enumerate(zip(xs, occ)):
            if o:
                shot.persons.append(new_person(rng, ids, x=x, y=hip, pose="sit", facing=f,
                                               seat=(v.vid, "driver" if i == 0 else "passenger")))


def board_pair_row(rng, ids, ground: float, shot, new_person) -> None:
    """Along an axis u (listeners at u > w1 face -u): the near board at [0, w1], the far board at
    [-g - w2, -g] (g = 17-20 px, room for a presenter between them), 1-2 listeners
    ``FAR_LISTEN`` px from the near board. One presenter facing +u (towards the listeners):
    p = 0.4 between the boards pointing at the near board, p = 0.5 beyond the far board
    pointing at it, else none."""
    d = int(rng.choice([-1, 1]))
    w1, w2 = float(rng.uniform(12, 14)), float(rng.uniform(12, 14))
    g = float(rng.uniform(17, 20))
    s_p = float(rng.uniform(0.9, 1.15))
    reach = (TORSO_W / 2 + ARM_REACH) * s_p - 1.0  # the hand touches the panel edge
    r = rng.random()
    presenter_u = -reach if r < 0.4 else (-g - w2 - reach if r < 0.9 else None)
    lo, hi = FAR_LISTEN
    members = [(w1 + float(rng.uniform(lo, hi)), "sit" if rng.random() < 0.5 else "stand")]
    if rng.random() < 0.5 and members[0][0] - w1 + 9.0 <= hi:  # a second listener behind
        u2 = members[0][0] + float(rng.uniform(9.0, hi - (members[0][0] - w1)))
        members.append((u2, "sit" if rng.random() < 0.5 else "stand"))
    u_min = -g - w2 - (2 * reach + 2 if presenter_u is not None and presenter_u < -g else 2)
    u_max = max(m[0] for m in members) + 7
    slack = max(WIDTH - 8 - (u_max - u_min), 0.0)
    start = 4 + float(rng.uniform(0, slack))
    to_x = (lambda uu: start + (uu - u_min)) if d > 0 else (lambda uu: start + (u_max - uu))
    shot.boards.append(Board(ids.next("board"), to_x(w1 / 2), ground, w1, float(rng.uniform(14, 18))))
    shot.boards.append(Board(ids.next("board"), to_x(-g - w2 / 2), ground, w2,
                             float(rng.uniform(14, 18))))
    if presenter_u is not None:
        shot.persons.append(new_person(rng, ids, x=to_x(presenter_u), y=ground, pose="stand",
                                       arm="point", scale=s_p, facing=d))
    for u_c, kind in members:
        shot.persons.append(new_person(rng, ids, x=to_x(u_c), y=ground, pose=kind,
                                       stool=(kind == "sit"), facing=-d))


# (top row, bottom row) kinds of a shot and their probabilities ("cells" = two default cells, pair /
# solo modules only): the same relation kind in both rows half of the time.
_SHOT_ROWS = ((("convoy", "convoy"), 0.25), (("board_pair", "board_pair"), 0.25),
              (("convoy", "board_pair"), 0.15), (("board_pair", "convoy"), 0.15),
              (("convoy", "cells"), 0.05), (("cells", "convoy"), 0.05),
              (("board_pair", "cells"), 0.05), (("cells", "board_pair"), 0.05))


def relation_row_kinds(rng) -> tuple:
    """Draw the (top, bottom) row kinds of one relation-world shot."""
    i = int(rng.choice(len(_SHOT_ROWS), p=[p for _, p in _SHOT_ROWS]))
    return _SHOT_ROWS[i][0]


assert CELL_W * 2 == WIDTH
assert FAR_SEAT - 13.0 > ROI_RF_MARGIN and FAR_LISTEN[0] - 7.0 > ROI_RF_MARGIN
