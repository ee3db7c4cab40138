"""
Register the builtin splits at import, under ``$ACAR_DATASETS`` (default ``datasets/``), like
detectron2's ``data/datasets/builtin.py`` with ``$DETECTRON2_DATASETS``. Files are read only when
a split is loaded (class metadata on first access), so importing never needs the data. The AVA
splits take their class metadata from the packaged 60-class list
(``acar_d2/data/ava_labelmap_v2.2.pbtxt``) when the official label map is not on disk.

Splits: ``ava_v2.{1,2}_{train,val}``, ``ava_kinetics_v1.0_{train,val}`` (+ ``_kinetics_*``: the
Kinetics side alone), ``aca_world_{train,val}`` (the synthetic AVA-format world of
``tools/make_synthetic_ava.py``), ``aca_world_rel_{train,val}`` (its ``--relation`` option), ``ucf101_24_{train,test}`` (split 1). Layout: datasets/README.md.
"""
import os

from ava_eval.label_map import AVA_LABEL_MAP_FILE
from ..layouts import FirstExisting, ava_frame_lists, ava_frame_roots, ava_proposal_candidates
from .aca_world import register_aca_world
from .ava_kinetics import register_ava_kinetics
from .ava import register_ava_instances
from .ucf101_24 import register_ucf24_instances

__all__ = ["register_all_ava", "register_all_aca_world", "register_all_ucf24", "UCF24_CLASSES"]

# AVA CSVs list all 80 action ids; rows of the 20 ids outside the 60 evaluated classes are dropped
# (the official evaluation's label-map filter), other ids are errors.
_AVA_ALL_ACTION_IDS = set(range(1, 81))

_AVA_LABEL_MAPS = {
    "v2.1": "ava_action_list_v2.1_for_activitynet_2018.pbtxt",
    "v2.2": "ava_action_list_v2.2_for_activitynet_2019.pbtxt",
}

UCF24_CLASSES = [
    "Basketball", "BasketballDunk", "Biking", "CliffDiving", "CricketBowling", "Diving", "Fencing",
    "FloorGymnastics", "GolfSwing", "HorseRiding", "IceDancing", "LongJump", "PoleVault",
    "RopeClimbing", "SalsaSpin", "SkateBoarding", "Skiing", "Skijet", "SoccerJuggling", "Surfing",
    "TennisSwing", "TrampolineJumping", "VolleyballSpiking", "WalkingWithDog",
]


def register_all_ava(root: str, prefix: str = "ava") -> None:
    """
    Register ``{prefix}_v2.{1,2}_{train,val}`` under ``root/ava`` (import: prefix "ava"; tests and
    tools register other trees under other prefixes). The proposal file, frame folder and
    frame list are searched when a split is loaded (:mod:`acar_d2.data.layouts`): PySlowFast,
    ACAR-Net and MMAction2 layouts all work without settings (datasets/README.md).
    """
    ava = os.path.join(root, "ava")
    ann = os.path.join(ava, "annotations")
    for version, label_map in _AVA_LABEL_MAPS.items():
        for split in ("train", "val"):
            name = f"{prefix}_{version}_{split}"
            register_ava_instances(
                name,
                {"version": version},
                os.path.join(ann, f"ava_{split}_{version}.csv"),
                os.path.join(ann, label_map),
                frames=FirstExisting(ava_frame_roots(ava), f"frame folder of {name}", folder=True),
                frame_list=FirstExisting(ava_frame_lists(ava, split), required=False),
                exclusions=os.path.join(ann, f"ava_{split}_excluded_timestamps_{version}.csv"),
                proposals=FirstExisting(ava_proposal_candidates(ann, split, version),
                                        f"proposal file of {name}"),
                fps=30,  # AVA frames are extracted at 30 fps from second 900 on (PySlowFast).
                first_second=900,
                known_action_ids=_AVA_ALL_ACTION_IDS,
                # v2.1 and v2.2 evaluate the same 60 classes: the packaged list serves both.
                label_map_fallback=str(AVA_LABEL_MAP_FILE),
            )


def register_all_aca_world(root: str) -> None:
    register_aca_world(os.path.join(root, "aca_world"), "aca_world")
    # the relation world (make_synthetic_ava.py --relation): same classes, other layouts
    register_aca_world(os.path.join(root, "aca_world_rel"), "aca_world_rel")


def register_all_ucf24(root: str) -> None:
    ucf = os.path.join(root, "ucf24")
    csv_dir = os.path.join(ucf, "annotations")
    for split in ("train", "test"):
        csv_file = os.path.join(csv_dir, f"{split}.csv")
        # The plain CSV when it was prepared, else the original pickle.
        use_csv = os.path.isfile(csv_file)
        register_ucf24_instances(
            f"ucf101_24_{split}",
            csv_file if use_csv else os.path.join(ucf, "UCF101v2-GT.pkl"),
            os.path.join(ucf, "rgb-images"),
            split=split,
            classes_file=os.path.join(csv_dir, "classes.txt"),
            class_names=UCF24_CLASSES,
            # optional person detections (test boxes; timestamp = 1-based frame number)
            proposals=FirstExisting(
                (os.path.join(csv_dir, f"{split}_proposals.pkl"),
                 os.path.join(csv_dir, f"{split}_proposals.csv")), required=False),
        )


_root = os.path.expanduser(os.getenv("ACAR_DATASETS", "datasets"))
register_all_ava(_root)
register_ava_kinetics(_root)  # ava_kinetics_v1.0_{train,val}, ..._kinetics_{train,val}
register_all_aca_world(_root)
register_all_ucf24(_root)
