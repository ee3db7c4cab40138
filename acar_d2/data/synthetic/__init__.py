"""
The synthetic AVA-format world "aca_world": people, vehicles and boards drawn as simple sprites,
with pose, person-object, person-person and two *indirect* (actor-context-actor) classes.

``write_world(out, num_videos, seed)`` writes the AVA file set read by
``acar_d2.data.datasets.ava`` (see ``datasets/SYNTHETIC.md`` for the rules);
``tools/make_synthetic_ava.py`` is its command line.
"""
from .render import person_box, render_frame
from .rules import derive_labels, derive_relations
from .sampling import sample_video
from .scene import CLASSES, FPS, HEIGHT, WIDTH, Board, Person, Shot, Vehicle
from .writer import format_stats, snapshot, video_ids, world_stats, write_world

__all__ = [
    "CLASSES", "FPS", "HEIGHT", "WIDTH", "Board", "Person", "Shot", "Vehicle", "derive_labels",
    "derive_relations", "sample_video", "person_box", "render_frame", "format_stats", "snapshot",
    "video_ids", "world_stats", "write_world",
]
