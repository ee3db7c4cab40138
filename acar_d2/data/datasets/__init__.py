"""AVA-format and UCF101-24 dataset loaders; importing registers the builtin splits."""
from ava_eval.label_map import ava_class_list
from .ava import (
    LabelMap,
    load_ava_instances,
    read_ava_annotations,
    read_dense_proposals,
    read_exclusions,
    read_frame_list,
    read_label_map,
    read_predicted_boxes_csv,
    register_ava_instances,
)
from .aca_world import load_aca_world, register_aca_world
from .custom import register_ava_format_dataset
from .from_config import register_config_datasets, validate_config_datasets
from .ucf101_24 import load_ucf24_instances, register_ucf24_instances, ucf24_pickle_to_csv
from . import builtin  # noqa: F401  (registers the builtin splits)
