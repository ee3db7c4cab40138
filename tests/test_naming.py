"""
One name per thing (issue 21).

- Split files: every public function that loads, registers or validates a split names its files
  ``annotations``, ``label_map``, ``frames``, ``frame_list``, ``videos``, ``exclusions``,
  ``proposals`` (the arguments of ``register_ava_format_dataset``); the metadata keys they are
  stored under come from one table, ``layouts.SPLIT_FILE_METADATA``.
- ROI heads: every head acar_d2 registers in detectron2's ``ROI_HEADS_REGISTRY`` is a
  ``<Name>ROIHeads`` defined in a module ``<family>_heads`` (acar_d2/modeling/roi_heads/).
"""
import inspect

import pytest
from detectron2.modeling import ROI_HEADS_REGISTRY

import acar_d2  # noqa: F401  (registers the heads)
from acar_d2.data.datasets.ava import load_ava_instances, register_ava_instances
from acar_d2.data.datasets.ava_kinetics import index_kinetics_clips, load_kinetics_instances
from acar_d2.data.datasets.custom import register_ava_format_dataset
from acar_d2.data.datasets.ucf101_24 import load_ucf24_instances, register_ucf24_instances
from acar_d2.data.layouts import SPLIT_FILE_METADATA, index_video_sources
from acar_d2.data.validate import files_of_dataset, validate_ava_dataset
from acar_d2.data.validate_sources import check_frame_sources
from acar_d2.evaluation import AVAEvaluator

FILE_ARGUMENTS = ("annotations", "label_map", "frames", "frame_list", "videos", "exclusions",
                  "proposals")
# the names these arguments had before (they remain metadata keys only)
OLD_ARGUMENTS = {"gt_csv", "frame_root", "video_root", "proposal_file", "annotation_file"}
SPLIT_FUNCTIONS = [
    load_ava_instances, register_ava_instances, register_ava_format_dataset,
    load_kinetics_instances, index_kinetics_clips, load_ucf24_instances, register_ucf24_instances,
    index_video_sources, validate_ava_dataset, check_frame_sources, AVAEvaluator.__init__,
]


@pytest.mark.parametrize("fn", SPLIT_FUNCTIONS, ids=lambda f: f.__qualname__)
def test_split_file_arguments_have_one_name(fn):
    params = set(inspect.signature(fn).parameters)
    old = sorted(params & OLD_ARGUMENTS)
    assert not old, f"{fn.__module__}.{fn.__qualname__} takes {old}; name files {FILE_ARGUMENTS}"


def test_register_ava_format_dataset_is_register_ava_instances_by_name():
    ours = inspect.signature(register_ava_format_dataset).parameters
    base = inspect.signature(register_ava_instances).parameters
    files = [p for p in ours if p in FILE_ARGUMENTS]
    assert set(files) == set(FILE_ARGUMENTS), files
    assert set(files) <= set(base), sorted(set(files) - set(base))


def test_metadata_table_covers_the_file_arguments():
    assert tuple(SPLIT_FILE_METADATA) == FILE_ARGUMENTS
    validated = set(inspect.signature(validate_ava_dataset).parameters)
    assert set(FILE_ARGUMENTS) <= validated, sorted(set(FILE_ARGUMENTS) - validated)


def test_files_of_dataset_round_trip(tmp_path):
    """Files registered under the argument names come back under the same names."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    name = "test_naming_round_trip"
    files = {k: str(tmp_path / k) for k in FILE_ARGUMENTS}
    try:
        register_ava_format_dataset(name, **files, fps=25.0)
        got = files_of_dataset(name)
        assert {k: got[k] for k in FILE_ARGUMENTS} == files, got
        assert got["fps"] == 25.0 and got["first_second"] == 0
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def _acar_d2_heads():
    return {name: cls for name, cls in ROI_HEADS_REGISTRY if cls.__module__.startswith("acar_d2.")}


def test_acar_d2_registers_heads():
    assert {"ACARROIHeads", "BaselineROIHeads", "ACFBROIHeads"} <= set(_acar_d2_heads())


@pytest.mark.parametrize("name", sorted(_acar_d2_heads()))
def test_registered_heads_follow_one_pattern(name):
    cls = _acar_d2_heads()[name]
    module = cls.__module__
    assert cls.__name__.endswith("ROIHeads"), f"{module}.{cls.__name__}: name it <Name>ROIHeads"
    assert module.startswith("acar_d2.modeling.roi_heads."), module
    assert module.rsplit(".", 1)[1].endswith("_heads"), (
        f"{cls.__name__} is defined in {module}; heads live in <family>_heads.py"
    )
