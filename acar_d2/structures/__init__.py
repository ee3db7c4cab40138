"""Ground floor: box rules used by both ``data`` and ``modeling`` (imports neither)."""
from .rois import assign_training_rois, jitter_boxes

__all__ = ["assign_training_rois", "jitter_boxes"]
