"""Action ROI heads (ROI_HEADS_REGISTRY; feature-bank heads ACFB / LFB included), HR2O operators
(HR2O_REGISTRY) and the pose-softmax loss."""
from .action_heads import ActionROIHeads, pose_class_indices_from_config, reads_feature_bank
from .acar_head import ACARROIHeads
from .baseline_head import BaselineROIHeads
from .feature_bank_heads import ACFBROIHeads, LFBROIHeads, compute_bank_entries
from .hr2o import HR2O_REGISTRY, build_hr2o
from .loss import action_probabilities, global_box_weight, pose_softmax_bce_loss
from .relation_heads import ActorActorROIHeads, ActorContextROIHeads
from .pyslowfast_heads import PySlowFastROIHeads

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
    "pose_class_indices_from_config",
    "reads_feature_bank",
    "PySlowFastROIHeads",
]
