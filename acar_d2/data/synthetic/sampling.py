"""
Sampling the shots of a synthetic video: a cell module per grid cell (:mod:`.scene`), or with the
relation world a convoy / board-pair row (:mod:`.relation_rows`). Depends on both, and neither on it.
"""
import numpy as np

from .relation_rows import REL_FACE_BOARD_DIST, board_pair_row, convoy_row, relation_row_kinds
from .scene import (_MODULE_P, _MODULE_P_LR, _MODULES, _MODULES_LR, CELL_W, FPS, ROW_GROUND, Shot,
                    _Ids, _new_person, _pair_module, _solo_module)

__all__ = ["sample_shot", "sample_video"]


def sample_shot(rng: np.random.Generator, ids: _Ids, start: int, end: int,
                long_range: bool = False, relation: bool = False) -> Shot:
    """Sample one layout: a module per grid cell (2 rows x 2 columns); with ``relation``, each
    row is a convoy, a board pair or two pair / solo cells (:mod:`.relation_rows`)."""
    bg = tuple(int(c) for c in rng.integers(175, 225, size=3))
    grounds = tuple(float(rng.integers(lo, hi + 1)) for lo, hi in ROW_GROUND)
    shot = Shot(start, end, background=bg, grounds=grounds)
    modules, probs = (_MODULES_LR, _MODULE_P_LR) if long_range else (_MODULES, _MODULE_P)
    kinds = relation_row_kinds(rng) if relation else ("cells", "cells")
    if relation:
        shot.face_board_dist = REL_FACE_BOARD_DIST
        # every ride / listen of the relation world is a far one: no vehicle or board cells
        modules, probs = (_pair_module, _solo_module), (0.45, 0.55)
    for row, kind in enumerate(kinds):
        if kind != "cells":
            row_fn = convoy_row if kind == "convoy" else board_pair_row
            row_fn(rng, ids, grounds[row], shot, _new_person)
            continue
        for col in range(2):
            module = modules[int(rng.choice(len(modules), p=probs))]
            module(rng, ids, col * CELL_W, grounds[row], shot)
    return shot


def sample_video(seed: int, index: int, duration_s: int = 10, shot_s: int = 5,
                 long_range: bool = False, relation: bool = False) -> list:
    """
    Sample the shots of one video; depends only on (seed, index), not on the world size.
    ``long_range`` adds the parting module, ``relation`` the relation world's rows (the default
    world is unchanged without them).

    Returns:
        list[Shot]: consecutive shots covering ``duration_s * FPS`` frames.
    """
    rng = np.random.default_rng([seed, index])
    ids = _Ids()
    n = duration_s * FPS
    starts = list(range(0, n, shot_s * FPS))
    return [sample_shot(rng, ids, s, min(s + shot_s * FPS, n), long_range, relation)
            for s in starts]
