"""
The labelling rules of the synthetic "aca_world" (datasets/SYNTHETIC.md): relations and class
names of a key frame derived from the geometry of its JSON snapshot (``writer.snapshot``), never
written by the sampler (:mod:`.scene`).
"""
from .scene import (FACE_BOARD_DIST, POINT_DIST, SAME_ROW_DY, TALK_DY, TALK_MAX_DX, TALK_MIN_DX,
                    world_classes)

__all__ = ["derive_relations", "derive_labels"]


def _boards_ahead(actor: dict, boards: list) -> list:
    """Boards in front of the actor on its ground line, as (gap to near edge, board), nearest first."""
    out = []
    for b in boards:
        if abs(actor["y"] - b["ground_y"]) > SAME_ROW_DY:
            continue
        x1, _, x2, _ = b["box"]
        gap = (x1 - actor["x"]) if actor["facing"] > 0 else (actor["x"] - x2)
        if gap >= 0:
            out.append((gap, b))
    return sorted(out, key=lambda g: g[0])


def derive_relations(actors: list, vehicles: list, boards: list,
                     face_board_dist: float = FACE_BOARD_DIST) -> list:
    """
    Relations of a key frame, as [subject, predicate, object] triples with ids "person:i",
    "vehicle:j", "board:k", "item". Predicates: in_driver_seat, in_passenger_seat, holds,
    points_at, faces (a board), faces_person (mutual, close, standing: talking distance),
    left_by (long-range option: the actor's talk partner has left the scene, actor key "left_by").
    A board is faced up to ``face_board_dist`` px ahead (the relation world's is longer).
    """
    rel = []
    for a in actors:
        me = f"person:{a['person_id']}"
        if a.get("left_by") is not None:
            rel.append([me, "left_by", f"person:{a['left_by']}"])
        if a["seat"] is not None:
            rel.append([me, f"in_{a['seat']['role']}_seat", f"vehicle:{a['seat']['vehicle']}"])
            continue
        if a["holding"]:
            rel.append([me, "holds", "item"])
        ahead = _boards_ahead(a, boards)
        if a["pose"] in ("stand", "sit") and ahead and ahead[0][0] <= face_board_dist:
            gap, b = ahead[0]
            pred = "points_at" if (a["arm"] == "point" and gap <= POINT_DIST) else "faces"
            rel.append([me, pred, f"board:{b['id']}"])
    free = [a for a in actors if a["seat"] is None and a["pose"] == "stand" and a["arm"] == "down"]
    for a in free:
        for b in free:
            if a is b:
                continue
            dx = b["x"] - a["x"]
            if not (TALK_MIN_DX <= abs(dx) <= TALK_MAX_DX and abs(a["y"] - b["y"]) <= TALK_DY):
                continue
            if a["facing"] * dx <= 0 or b["facing"] * dx >= 0:
                continue  # not face to face
            lo, hi = sorted((a["x"], b["x"]))
            if any(lo < (bd["box"][0] + bd["box"][2]) / 2 < hi
                   and abs(bd["ground_y"] - a["y"]) <= SAME_ROW_DY for bd in boards):
                continue  # a board between them
            rel.append([f"person:{a['person_id']}", "faces_person", f"person:{b['person_id']}"])
    return rel


def derive_labels(actors: list, relations: list) -> dict:
    """
    Class names of every actor from its pose and the relations (rules of datasets/SYNTHETIC.md).

    Returns:
        dict[int, list[str]]: person_id -> names, pose first, in class-id order.
    """
    by_subject = {}
    for s, p, o in relations:
        by_subject.setdefault(s, []).append((p, o))
    driven = {o for s, p, o in relations if p == "in_driver_seat"}
    presented = {o: s for s, p, o in relations if p == "points_at"}
    order = {c.name: c.id for c in world_classes(long_range=True)}
    out = {}
    for a in actors:
        me = f"person:{a['person_id']}"
        names = {a["pose"]}
        for p, o in by_subject.get(me, []):
            if p == "holds":
                names.add("carry")
            elif p == "in_driver_seat":
                names.add("drive")
            elif p == "in_passenger_seat" and o in driven:
                names.add("ride")  # indirect: another actor drives the SAME vehicle
            elif p == "points_at":
                names.add("present")
            elif p == "faces" and presented.get(o, me) != me:
                names.add("listen")  # indirect: another actor presents at the SAME board
            elif p == "faces_person":
                names.add("talk_to")
            elif p == "left_by":
                names.add("left_behind")  # long range: the partner left before this clip
        out[a["person_id"]] = sorted(names, key=order.__getitem__)
    return out
