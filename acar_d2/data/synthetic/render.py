"""
Renderer of the synthetic aca_world: draws a shot at a frame index with PIL primitives and gives
the ground-truth box of every person (the union of its visible primitives).

Sprites are high contrast and simple so small CNNs at ~128 px can read them: a person is a skin
head with hair on the back half (shows the facing direction), a shirt-coloured torso and dark legs;
arms are skin lines (pointing = horizontal arm); a held item is an orange square. A vehicle is a
coloured body with a light window (cabin), a dark steering wheel in front of the driver seat and
two wheels; a board is a white framed panel on legs.
"""
from typing import Optional

import numpy as np
from PIL import Image, ImageDraw

from .scene import (ARM_REACH, HEAD_R, HEIGHT, LEG_H, TORSO_H, TORSO_W, WIDTH, Board, Person,
                    Shot, Vehicle, person_state, visible_persons)

__all__ = ["person_primitives", "person_box", "render_frame"]

SKIN, HAIR, LEGS = (235, 190, 150), (60, 40, 20), (40, 40, 50)
ITEM, STOOL, WINDOW = (255, 140, 0), (120, 80, 40), (190, 220, 235)
DARK, WHITE, FLOOR = (30, 30, 30), (250, 250, 250), (150, 150, 140)


def person_primitives(p: Person, x: float, facing: int, phase: int) -> list:
    """
    Drawing primitives of a person at body-centre ``x``.

    Returns:
        list[tuple]: (kind, xyxy box, colour, extra) with kind in rect | line | ellipse | hair;
        for "line" the box is the two end points and extra the width.
    """
    s, f, y = p.scale, facing, p.y
    r, tw, th, lh = HEAD_R * s, TORSO_W * s, TORSO_H * s, LEG_H * s
    prims = []
    if p.pose == "lie":
        # horizontal body on the ground, head towards ``facing``
        half = (2 * r + th + lh) / 2
        hx = x + f * (half - r)
        prims.append(("rect", (x - half + (2 * r if f < 0 else 0), y - 2 * r + 1,
                               x + half - (2 * r if f > 0 else 0), y), p.shirt, None))
        prims.append(("line", (x - f * half, y - r / 2, x - f * (half - lh), y - r / 2), LEGS, 2))
        prims.append(("ellipse", (hx - r, y - 2 * r, hx + r, y), SKIN, None))
        prims.append(("hair", (hx - r, y - 2 * r, hx + r, y), HAIR, f))
        return prims
    if p.seat is not None:
        hip = y  # vehicle occupant: hips and legs are behind the body panel
    elif p.pose == "sit":
        hip = y - 0.6 * lh
        knee = x + f * 5 * s
        prims.append(("rect", (min(x, knee), hip - 2, max(x, knee), hip), LEGS, None))
        prims.append(("line", (knee, hip, knee, y), LEGS, 2))
    else:
        hip = y - lh
        a = 2 * s * (1 if phase else -1) if p.pose == "walk" else 0.0
        prims.append(("line", (x - tw / 4, hip, x - tw / 4 + a, y), LEGS, 2))
        prims.append(("line", (x + tw / 4, hip, x + tw / 4 - a, y), LEGS, 2))
    sh = hip - th
    prims.append(("rect", (x - tw / 2, sh, x + tw / 2, hip), p.shirt, None))
    prims.append(("ellipse", (x - r, sh - 2 * r, x + r, sh), SKIN, None))
    prims.append(("hair", (x - r, sh - 2 * r, x + r, sh), HAIR, f))
    if p.arm == "point":
        prims.append(("line", (x + f * tw / 2, sh + 2, x + f * (tw / 2 + ARM_REACH * s), sh + 2),
                      SKIN, 2))
    elif p.holding:
        ix = x + f * (tw / 2 + 1)
        prims.append(("line", (x + f * tw / 4, sh + 2, ix, hip - 3), SKIN, 2))
        prims.append(("rect", (min(ix, ix + f * 5 * s), hip - 5 * s, max(ix, ix + f * 5 * s), hip),
                      ITEM, None))
    else:
        prims.append(("line", (x + f * tw / 4, sh + 2, x + f * tw / 4, hip - 2), SKIN, 2))
    return prims


def _bounds(prims: list) -> list:
    x1 = min(min(q[1][0], q[1][2]) for q in prims)
    y1 = min(min(q[1][1], q[1][3]) for q in prims)
    x2 = max(max(q[1][0], q[1][2]) for q in prims)
    y2 = max(max(q[1][1], q[1][3]) for q in prims)
    return [x1, y1, x2, y2]


def person_box(p: Person, frame: int, shot: Shot) -> list:
    """
    Ground-truth box of a person at a frame: tight around its visible sprite, integer pixels
    [x1, y1, x2, y2] (x2, y2 exclusive) clipped to the frame.
    """
    x, f, ph = person_state(p, frame, shot)
    x1, y1, x2, y2 = _bounds(person_primitives(p, x, f, ph))
    if p.seat is not None:
        v = next(v for v in shot.vehicles if v.vid == p.seat[0])
        y2 = min(y2, v.body_top)  # the body hides the rest
    box = [int(np.floor(x1)) - 1, int(np.floor(y1)), int(np.ceil(x2)) + 1, int(np.ceil(y2)) + 1]
    return [max(0, min(WIDTH, box[0])), max(0, min(HEIGHT, box[1])),
            max(0, min(WIDTH, box[2])), max(0, min(HEIGHT, box[3]))]


def _draw(d: ImageDraw.ImageDraw, prims: list) -> None:
    for kind, b, color, extra in prims:
        b = [round(c) for c in b]
        if kind == "rect":
            d.rectangle(b, fill=color)
        elif kind == "line":
            d.line(b, fill=color, width=extra)
        elif kind == "ellipse":
            d.ellipse(b, fill=color)
        else:  # hair on the back half of the head: angles are clockwise from 3 o'clock
            d.pieslice(b, 90, 270, fill=color) if extra > 0 else d.pieslice(b, 270, 90, fill=color)


def _draw_board(d: ImageDraw.ImageDraw, b: Board) -> None:
    x1, y1, x2, _ = [round(c) for c in b.box()]
    bottom = round(b.ground - 10)
    d.line([x1 + 2, bottom, x1 + 2, round(b.ground)], fill=DARK, width=1)
    d.line([x2 - 2, bottom, x2 - 2, round(b.ground)], fill=DARK, width=1)
    d.rectangle([x1, y1, x2, bottom], fill=WHITE, outline=DARK)


def _draw_vehicle_back(d: ImageDraw.ImageDraw, v: Vehicle) -> None:
    """Cabin window, roof and steering wheel (drawn before the occupants)."""
    top = v.body_top - 19
    x1, x2 = v.x1 + 0.1 * v.length, v.x1 + 0.9 * v.length
    d.rectangle([round(x1), round(top), round(x2), round(v.body_top)], fill=WINDOW)
    d.rectangle([round(x1), round(top), round(x2), round(top) + 2], fill=v.color)
    wx = v.wheel_x()
    d.line([round(wx), round(v.body_top - 7), round(wx + v.facing * 2), round(v.body_top)],
           fill=DARK, width=2)


def _draw_vehicle_front(d: ImageDraw.ImageDraw, v: Vehicle) -> None:
    """Body panel and wheels (drawn after the occupants, hiding their legs)."""
    bottom = v.ground - v.wheel_r
    d.rectangle([round(v.x1), round(v.body_top), round(v.x1 + v.length), round(bottom)],
                fill=v.color)
    r = v.wheel_r
    for wx in (v.x1 + 0.2 * v.length, v.x1 + 0.8 * v.length):
        d.ellipse([round(wx - r), round(v.ground - 2 * r), round(wx + r), round(v.ground)],
                  fill=DARK)


def render_frame(shot: Shot, frame: int, persons: Optional[list] = None) -> np.ndarray:
    """
    Render a frame of a shot.

    Args:
        shot (Shot): the layout.
        frame (int): video frame index (walkers move with it).
        persons (list[Person] or None): override of ``shot.persons`` (tests remove one actor).
    Returns:
        ndarray: uint8 (HEIGHT, WIDTH, 3) RGB.
    """
    persons = visible_persons(shot.persons if persons is None else persons, frame)
    img = Image.new("RGB", (WIDTH, HEIGHT), shot.background)
    d = ImageDraw.Draw(img)
    for g in shot.grounds:  # floor stripe under each row
        d.rectangle([0, round(g) - 2, WIDTH, round(g) + 6], fill=FLOOR)
    for b in shot.boards:
        _draw_board(d, b)
    for v in shot.vehicles:
        _draw_vehicle_back(d, v)
        for p in persons:
            if p.seat is not None and p.seat[0] == v.vid:
                _draw(d, person_primitives(p, *person_state(p, frame, shot)))
        _draw_vehicle_front(d, v)
    free = sorted((p for p in persons if p.seat is None), key=lambda p: (p.y, p.pid))
    for p in free:
        if p.stool:
            d.rectangle([round(p.x - 3 * p.scale), round(p.y - 0.6 * LEG_H * p.scale),
                         round(p.x + 1 * p.scale), round(p.y)], fill=STOOL)
        _draw(d, person_primitives(p, *person_state(p, frame, shot)))
    return np.asarray(img)
