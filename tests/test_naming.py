"""
One name per thing (issue 21).

- Split files: every public function that loads, registers or validates a split names its files
  ``annotations``, ``label_map``, ``frames``, ``frame_list``, ``videos``, ``exclusions``,
  ``proposals`` (the arguments of ``register_ava_format_dataset``); the metadata keys they are
  stored under come from one table, ``layouts.SPLIT_FILE_METADATA``.
- ROI heads: every head acar_d2 registers in detectron2's ``ROI_HEADS_REGISTRY`` is a
  ``<Name>ROIHeads`` defined in a module ``<family>_heads`` (acar_d2/modeling/roi_heads/).
- Issue 31: relation maps have one recorder and one type, AVA CSVs one module, the demo configs
  one person-detector base, a zoo entry one name.
"""
import ast
import inspect
from pathlib import Path

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


# ---- Issue 31: one name and one place per concept at the edges -------------------------------
REPO = Path(__file__).resolve().parents[1]
SOURCES = [p for d in ("acar_d2", "ava_eval", "demo", "tools") for p in sorted((REPO / d).rglob("*.py"))]
# The names relation maps went by before RelationRecorder / RelationMap (issue 31).
OLD_RELATION_NAMES = {"record_relations", "relations_recording", "take_relation_records",
                      "relation_records", "RelationRecord", "relation_document",
                      "add_relation_fields", "check_relation_heads", "relation_map",
                      "attention_peak_in_box", "relation_context_maps", "relation_actor_weights"}


def _names_used(path: Path):
    """(name, line) of every definition, attribute, variable and imported name of one file."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node.name, node.lineno
        elif isinstance(node, ast.Attribute):
            yield node.attr, node.lineno
        elif isinstance(node, ast.Name):
            yield node.id, node.lineno
        elif isinstance(node, ast.alias):
            yield node.name.rsplit(".", 1)[-1], getattr(node, "lineno", 0)


def test_one_relation_recorder_and_one_relation_map():
    """Relation maps are recorded by ``RelationRecorder`` and held by ``RelationMap``, both in
    ``acar_d2/modeling/relation_maps.py``; none of the names they had before is used anywhere."""
    from acar_d2.modeling import RelationMap, RelationRecorder

    assert RelationRecorder.__module__ == RelationMap.__module__ == "acar_d2.modeling.relation_maps"
    assert callable(RelationMap.to_json) and callable(RelationMap.from_json)
    old = [f"{p.relative_to(REPO)}:{line}: {name}" for p in SOURCES
           for name, line in _names_used(p) if name in OLD_RELATION_NAMES]
    assert not old, "old relation-map names:\n" + "\n".join(old)
    relation_modules = sorted(str(p.relative_to(REPO)) for p in (REPO / "acar_d2").rglob("*relation*.py")
                              if "synthetic" not in p.parts)
    assert relation_modules == ["acar_d2/modeling/relation_maps.py",
                                "acar_d2/modeling/roi_heads/relation_heads.py"], relation_modules


def test_the_model_threads_no_relation_records():
    """``ACARNet`` and the ACAR heads know nothing of relation maps: no argument, attribute or
    method of theirs names them (the recorder hooks in from outside)."""
    from acar_d2.modeling.meta_arch.acar_net import ACARNet
    from acar_d2.modeling.roi_heads import ACARROIHeads

    for cls in (ACARNet, ACARROIHeads):
        own = [n for n in vars(cls) if "relation" in n.lower()]
        assert not own, f"{cls.__name__}: {own}"
        for name, fn in vars(cls).items():
            if inspect.isfunction(fn):
                params = [p for p in inspect.signature(fn).parameters if "relation" in p]
                assert not params, f"{cls.__name__}.{name}{params}"


# Every AVA CSV reader / writer and the one module that defines them.
CSV_FUNCTIONS = {"read_box_csv", "parse_box_csv", "check_unit_boxes", "read_exclusions",
                 "read_ava_annotations", "read_predicted_boxes_csv", "write_ava_csv",
                 "format_submission_rows"}
CSV_MODULE = "ava_eval/csv_io.py"


def test_ava_csv_io_has_one_module():
    """AVA CSVs are read and written by ``ava_eval/csv_io.py`` only: no second ``ava_format``
    module (or ``ava_csv`` / ``ava_io``), and no other file defines a CSV reader or writer."""
    import ava_eval.csv_io as csv_io

    doubles = sorted(str(p.relative_to(REPO)) for p in SOURCES
                     if p.stem in ("ava_format", "ava_csv", "ava_io"))
    assert not doubles, doubles
    defined = {}
    for p in SOURCES:
        for node in ast.walk(ast.parse(p.read_text(), str(p))):
            if isinstance(node, ast.FunctionDef) and node.name in CSV_FUNCTIONS:
                defined.setdefault(node.name, []).append(str(p.relative_to(REPO)))
    assert defined == {name: [CSV_MODULE] for name in CSV_FUNCTIONS}, defined
    assert CSV_FUNCTIONS <= set(csv_io.__all__), sorted(CSV_FUNCTIONS - set(csv_io.__all__))


CONFIGS = REPO / "configs"
DETECTOR_BASE = "Base-COCO-Person-Detector.yaml"


def _yaml(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


def test_demo_configs_share_the_detector_base():
    """The COCO person detector is written once, in ``configs/Demo/Base-COCO-Person-Detector.yaml``:
    every demo config is ``_BASE_: [<its action config>, Base-COCO-Person-Detector.yaml]`` and sets
    no detector key; the zoo takes the detector's weight file from that base (one place)."""
    from acar_d2.model_zoo import COCO_PERSON_DETECTOR, ZOO_ENTRIES

    base = _yaml(CONFIGS / "Demo" / DETECTOR_BASE)
    url = base["MODEL"]["PERSON_DETECTOR"]["WEIGHTS"]
    assert COCO_PERSON_DETECTOR.url == url and COCO_PERSON_DETECTOR.md5_prefix == "280758"
    # (the config comments and a tool's usage example may quote it; configs and the zoo may not)
    naming = [str(p.relative_to(REPO))
              for p in [*CONFIGS.rglob("*.yaml"), *(REPO / "acar_d2" / "model_zoo").rglob("*.py")]
              if "faster_rcnn_R_50_FPN_3x" in p.read_text()]
    assert naming == [f"configs/Demo/{DETECTOR_BASE}"], naming
    leaves = sorted(p for p in (CONFIGS / "Demo").glob("*.yaml") if p.name != DETECTOR_BASE)
    assert len(leaves) == len(ZOO_ENTRIES) == 14, (len(leaves), len(ZOO_ENTRIES))
    for path in leaves:
        cfg = _yaml(path)
        assert cfg["_BASE_"][1:] == [DETECTOR_BASE], (path.name, cfg["_BASE_"])
        assert "PERSON_DETECTOR" not in cfg.get("MODEL", {}), path.name
    # one name per entry: the demo config follows from the action config
    demo = {CONFIGS / e.demo_config: e for e in ZOO_ENTRIES.values()}
    assert sorted(demo) == leaves, sorted(set(demo) ^ set(leaves))
    for path, entry in demo.items():
        assert _yaml(path)["_BASE_"][0] == f"../{entry.config}", (entry.name, path.name)


def test_a_list_of_bases_names_the_missing_file(tmp_path):
    from acar_d2.engine import setup_cfg

    (tmp_path / "a.yaml").write_text("MODEL:\n  ACTION_HEAD:\n    NUM_CLASSES: 7\n")
    (tmp_path / "b.yaml").write_text("MODEL:\n  ACTION_HEAD:\n    NUM_CLASSES: 9\n")
    leaf = tmp_path / "leaf.yaml"
    leaf.write_text('_BASE_: ["a.yaml", "b.yaml"]\nSOLVER:\n  MAX_ITER: 5\n')
    cfg = setup_cfg(str(leaf), freeze=False)
    assert (cfg.MODEL.ACTION_HEAD.NUM_CLASSES, cfg.SOLVER.MAX_ITER) == (9, 5)  # in order, leaf last
    leaf.write_text('_BASE_: ["a.yaml", "gone.yaml"]\n')
    with pytest.raises(FileNotFoundError, match=f"config file not found: {tmp_path}/gone.yaml"):
        setup_cfg(str(leaf))


# ---- Issue 34: one declaration of which feature bank a model reads, one bank record ---------
# The names the bank kind and the bank record went by before ``bank_kind`` / ``bank_kind_of`` and
# ``BankRecord`` (acar_d2/config/bank_kind.py, acar_d2/data/bank_record.py).
OLD_BANK_NAMES = {"reads_feature_bank", "uses_feature_bank", "uses_bank", "check_bank_record",
                  "make_bank_record", "write_or_check_record", "_same_extractor", "RECORD_KEYS"}


def test_one_bank_kind_declaration_and_one_bank_record():
    """Each registered head declares the bank it reads in ``bank_kind`` (read by
    ``bank_kind_of`` only); the bank record is ``BankRecord``; no earlier name is used."""
    from acar_d2.config import bank_kind_of
    from acar_d2.data.bank_record import BankRecord

    kinds = {name: bank_kind_of(cls) for name, cls in _acar_d2_heads().items()}
    assert {k for k in kinds.values()} == {"", "acfb", "lfb"}, kinds
    assert (kinds["ACFBROIHeads"], kinds["LFBROIHeads"], kinds["ACARROIHeads"]) == ("acfb", "lfb", "")
    assert callable(BankRecord.load) and callable(BankRecord.check_fits)
    old = [f"{p.relative_to(REPO)}:{line}: {name}" for p in SOURCES
           for name, line in _names_used(p) if name in OLD_BANK_NAMES]
    assert not old, "old feature-bank names:\n" + "\n".join(old)
