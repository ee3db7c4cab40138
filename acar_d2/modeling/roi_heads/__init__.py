"""
Action ROI heads (ROI_HEADS_REGISTRY; feature-bank heads ACFB / LFB included), HR2O operators
(HR2O_REGISTRY) and the pose-softmax loss.

One pattern: a file ``<family>_heads.py`` holds the ``<Name>ROIHeads`` classes of one family
(``action_heads.py`` their base ``ActionROIHeads``; ``baseline_heads.py``, ``relation_heads.py``,
``acar_heads.py``, ``feature_bank_heads.py``, ``pyslowfast_heads.py``, ``videomae_heads.py`` the registered heads); the other files are operators
and helpers the heads use, not heads (``hr2o.py``, ``bank_attention.py``, ``layout.py``,
``loss.py``). tests/test_naming.py checks the registered ones.
"""
from .action_heads import (
    ActionROIHeads,
    num_classes_from_config,
    pose_class_indices_from_config,
)
from .acar_heads import ACARROIHeads
from .baseline_heads import BaselineROIHeads
from .feature_bank_heads import ACFBROIHeads, LFBROIHeads, compute_bank_entries
from .hr2o import HR2O_REGISTRY, build_hr2o
from .loss import action_probabilities, global_box_weight, pose_softmax_bce_loss
from .relation_heads import ActorActorROIHeads, ActorContextROIHeads
from .pyslowfast_heads import PySlowFastROIHeads
from .videomae_heads import VideoMAEROIHeads

__all__ = [
    "ActionROIHeads",
    "ACARROIHeads",
    "ACFBROIHeads",
    "LFBROIHeads",
    "compute_bank_entries",
    "ActorActorROIHeads",
    "ActorContextROIHeads",
    "BaselineROIHeads",
    "HR2O_REGISTRY",
    "build_hr2o",
    "action_probabilities",
    "global_box_weight",
    "pose_softmax_bce_loss",
    "num_classes_from_config",
    "pose_class_indices_from_config",
    "PySlowFastROIHeads",
    "VideoMAEROIHeads",
]
