"""
Row layouts of the *relation world* (``write_world(relation=True)``, ``--relation``;
datasets/SYNTHETIC.md "Option: a world where only actor-context-actor relations decide").

The default world fills each grid row with two independent modules. Here a row is one wide scene
(160 px) built so that the first-order cue of an indirect class appears as often in negatives as
in positives, and only the object between the two actors tells them apart:

* **convoy** - a bus and a car of the SAME colour, nose to tail, facing the same way. A passenger
  of the bus rides only if the bus's own driver seat is occupied; the car's driver sits ahead of
  the passenger, facing the same way, whether or not the bus has a driver ("a passenger beside
  another vehicle's driver"). What separates the bus driver from the car driver is the gap
  between the two bodies, 25-110 px away from the passenger.
* **board pair** - two boards one behind the other on the listeners' line of sight; one presenter,
  facing the listeners, points either at the near board (the listeners listen) or at the far
  board (they do not: "somebody facing another board"). The presenter is in front of the
  listeners, facing them, with an arm pointing, in both cases; only which board the hand touches
  differs.

Labels still come only from :mod:`.rules` (the same rules as the default world).
"""
from .scene import ARM_REACH, CELL_W, TORSO_W, VEHICLE_COLORS, WIDTH, Board, Vehicle

__all__ = ["convoy_row", "board_pair_row", "bus_seat_fracs"]

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
    """A bus (64-96 px) and a car (44-52 px) of one colour, 3-8 px apart, both facing ``f``,
    the car in front. Bus driver p = 0.5, each bus passenger seat p = 0.5 (at least one
    passenger); the car always has its driver and no passenger, so a bus passenger without its
    own driver (negative) always has another vehicle's driver ahead: hard negatives are as
    frequent as positives."""
    f = int(rng.choice([-1, 1]))
    color = VEHICLE_COLORS[int(rng.integers(len(VEHICLE_COLORS)))]
    car_len, gap = float(rng.uniform(44, 52)), float(rng.uniform(3, 8))
    bus_len = float(rng.uniform(64, min(96.0, WIDTH - 8 - car_len - gap)))
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
    taken = [rng.random() < 0.5 for _ in bus_seats[1:]]
    if not any(taken):
        taken[int(rng.integers(len(taken)))] = True
    occupied = [rng.random() < 0.5] + taken
    for (v, xs, occ) in ((bus, bus_seats, occupied),
                         (car, car.seat_xs(), [True, False])):
        for i, (x, o) in enumerate(zip(xs, occ)):
            if o:
                shot.persons.append(new_person(rng, ids, x=x, y=hip, pose="sit", facing=f,
                                               seat=(v.vid, "driver" if i == 0 else "passenger")))


def board_pair_row(rng, ids, ground: float, shot, new_person) -> None:
    """Along an axis u (listeners at u > w1 face -u): the near board at [0, w1], the far board at
    [-g - w2, -g] (g = 17-22 px, room for a presenter between them), 1-2 listeners 10-48 px
    from the near board. One presenter facing +u (towards the listeners): p = 0.35 between the
    boards pointing at the near board, p = 0.55 beyond the far board pointing at it, else none."""
    d = int(rng.choice([-1, 1]))
    w1, w2 = float(rng.uniform(12, 16)), float(rng.uniform(12, 16))
    g = float(rng.uniform(17, 22))
    s_p = float(rng.uniform(0.9, 1.15))
    reach = (TORSO_W / 2 + ARM_REACH) * s_p - 1.0  # the hand touches the panel edge
    r = rng.random()
    presenter_u = -reach if r < 0.35 else (-g - w2 - reach if r < 0.9 else None)
    members = []  # (u, facing along u, kind)
    u = w1
    for _ in range(int(rng.integers(1, 3))):
        u_c = u + float(rng.uniform(3, 38)) + 7.0  # up to 48 px from the near board
        if u_c - w1 > 48.0:
            break
        members.append((u_c, -1, "sit" if rng.random() < 0.5 else "stand"))
        u = u_c + 8.0
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
    for u_c, fu, kind in members:
        shot.persons.append(new_person(rng, ids, x=to_x(u_c), y=ground, pose=kind,
                                       stool=(kind == "sit"), facing=fu * d))


# Row kinds of the relation world and their probabilities; "cells" = two default modules.
RELATION_ROWS = (("convoy", 0.4), ("board_pair", 0.4), ("cells", 0.2))
assert CELL_W * 2 == WIDTH
