"""Action ROI heads (ROI_HEADS_REGISTRY), HR2O operators (HR2O_REGISTRY) and the pose-softmax loss."""
from .action_heads import ActionROIHeads, pose_class_indices_from_config
from .acar_head import ACARROIHeads
from .baseline_head import BaselineActionHeads
from .hr2o import HR2O_REGISTRY, build_hr2o
from .loss import action_probabilities, pose_softmax_bce_loss
from .relation_heads import ActorActorHeads, ActorContextHeads

__all__ = [
    "ActionROIHeads",
    "ACARROIHeads",
    "ActorActorHeads",
    "ActorContextHeads",
    "BaselineActionHeads",
    "HR2O_REGISTRY",
    "build_hr2o",
    "action_probabilities",
    "pose_softmax_bce_loss",
    "pose_class_indices_from_config",
]
