"""
``acar_d2.data.class_subset``: class subsets of a registered split (``DATASETS.CLASSES``).
"""
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from acar_d2.data.class_subset import (
    filter_dataset_dicts,
    reset_class_subsets,
    resolve_classes,
    set_split_classes,
    subset_class_table,
)

IDS = [1, 3, 12, 17, 64, 80]
NAMES = ["bend", "crouch", "stand", "carry", "fight", "watch"]
FULL = {
    "action_ids": IDS,
    "action_classes": NAMES,
    "pose_class_indices": [0, 1, 2],
    "class_groups": {"pose": [0, 1, 2], "person_object": [3], "person_person": [4, 5]},
}


def test_resolve_classes_takes_names_and_ids_in_label_map_order():
    assert resolve_classes(["fight", 3, "12"], IDS, NAMES) == [3, 12, 64]
    # a name wins over an id: a class named "3" is that class
    assert resolve_classes(["3"], [3, 7], ["x", "3"]) == [7]


@pytest.mark.parametrize("classes, message", [
    (["stand", "jump"], r"DATASETS.CLASSES: 'jump' is neither a class name nor a label-map id of 6"),
    ([2], r"DATASETS.CLASSES: 2 is neither"),
    (["stand", 12], r"DATASETS.CLASSES: class 12 \(id 12\) is listed twice"),
])
def test_resolve_classes_errors_name_the_key(classes, message):
    with pytest.raises(ValueError, match=message):
        resolve_classes(classes, IDS, NAMES)


def test_subset_table_keeps_original_ids_and_renumbers_pose_and_groups():
    table = subset_class_table(FULL, [3, 12, 17, 80])
    assert table == {
        "action_ids": [3, 12, 17, 80],
        "action_classes": ["crouch", "stand", "carry", "watch"],
        "pose_class_indices": [0, 1],  # one softmax between the 2 kept poses
        "class_groups": {"pose": [0, 1], "person_object": [2], "person_person": [3]},
    }


def test_one_kept_pose_class_becomes_a_sigmoid_class():
    table = subset_class_table(FULL, [12, 64])
    assert table["pose_class_indices"] == [] and table["class_groups"]["pose"] == [0]


def _dicts():
    return [{"video_id": "v", "timestamp": 1, "annotations": [
        {"bbox": [0, 0, 1, 1], "action_ids": [12, 17], "person_id": 0},
        {"bbox": [1, 1, 2, 2], "action_ids": [80], "person_id": 1},
    ]}]


def test_filter_keeps_unlabeled_persons_as_negatives_or_drops_them():
    dicts = _dicts()
    kept = filter_dataset_dicts(dicts, [17, 64])
    assert [a["action_ids"] for a in kept[0]["annotations"]] == [[17], []]
    dropped = filter_dataset_dicts(dicts, [17, 64], "drop")
    assert [a["person_id"] for a in dropped[0]["annotations"]] == [0]
    assert dicts == _dicts(), "the input dicts were modified"
    # a key frame left without any annotation stays (training's FILTER_EMPTY_ANNOTATIONS decides)
    assert len(filter_dataset_dicts(dicts, [1], "drop")) == 1
    with pytest.raises(ValueError, match="unlabeled_persons"):
        filter_dataset_dicts(dicts, [1], "keep")


@pytest.fixture
def split():
    name = "class_subset_test_split"
    DatasetCatalog.register(name, _dicts)
    MetadataCatalog.get(name).set(**FULL)
    yield name
    reset_class_subsets()
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def test_split_becomes_the_subset_and_comes_back_whole(split):
    before = MetadataCatalog.get(split)
    assert set_split_classes(split, ["watch", "carry"]) == [17, 80]
    meta = MetadataCatalog.get(split)
    assert (meta.action_ids, meta.action_classes) == ([17, 80], ["carry", "watch"])
    assert meta.label_map_ids == IDS and meta.class_subset == [17, 80]
    assert before.action_ids == IDS, "a metadata object handed out before changed"
    anns = DatasetCatalog.get(split)[0]["annotations"]
    assert [a["action_ids"] for a in anns] == [[17], [80]]
    # another subset starts from the split as registered, not from the previous subset
    assert set_split_classes(split, ["stand"]) == [12]
    assert [a["action_ids"] for a in DatasetCatalog.get(split)[0]["annotations"]] == [[12], []]
    assert set_split_classes(split, []) is None
    assert MetadataCatalog.get(split) is before and DatasetCatalog.get(split) == _dicts()
