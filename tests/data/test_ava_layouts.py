"""The builtin AVA splits on PySlowFast and ACAR-Net trees (no settings), config overrides, a
ground-truth pickle passed as CSV, and the proposal-format converters."""
import os
import pickle
import shutil

import numpy as np
import pytest
from detectron2.data import DatasetCatalog

from acar_d2.data.datasets.builtin import register_all_ava
from acar_d2.data.formats import (
    acar_records_to_rows,
    convert_proposals,
    detect_proposal_format,
    read_acar_pickle,
    read_proposals,
    write_proposals,
)
from acar_d2.data.layouts import set_split_files
from acar_d2.engine import setup_cfg

from . import ava_layout_trees as lt

_count = [0]


def _register(root):
    _count[0] += 1
    prefix = f"layout{_count[0]}"
    register_all_ava(str(root), prefix)
    return prefix


def _expected_dicts(d):
    """(vid, ts) -> (frame index, sorted action-id lists, n proposals)"""
    return {(x["video_id"], x["timestamp"]): (
        x["key_frame_index"], sorted(sorted(a["action_ids"]) for a in x["annotations"]),
        len(x["proposals"]["boxes"])) for x in d}


EXPECTED = {
    ("-FaXLcSFjUI", 902): (60, [[11], [12, 80]], 2),
    ("-FaXLcSFjUI", 903): (90, [[]], 0),   # only id 2 (not evaluated): the person stays
    ("_145Aa_xkuE", 903): (90, [[14]], 1),
}


@pytest.mark.parametrize("make", [lt.make_pyslowfast_tree, lt.make_acar_tree])
def test_builtin_splits_on_user_trees(tmp_path, make):
    make(tmp_path)
    prefix = _register(tmp_path)
    for split in ("train", "val"):
        dicts = DatasetCatalog.get(f"{prefix}_v2.2_{split}")
        assert _expected_dicts(dicts) == EXPECTED
        by_key = {(x["video_id"], x["timestamp"]): x for x in dicts}
        d = by_key[("-FaXLcSFjUI", 902)]
        h, w = lt.VIDEOS["-FaXLcSFjUI"]
        assert (d["height"], d["width"]) == (h, w)
        # proposals scaled to pixels, highest-score copy kept for repeated CSV boxes
        np.testing.assert_allclose(d["proposals"]["boxes"][0], [0.1 * w, 0.2 * h, 0.5 * w, 0.875 * h],
                                   rtol=1e-5)
        np.testing.assert_allclose(sorted(d["proposals"]["scores"]), [0.5, 0.96], rtol=1e-6)
        frame = os.path.join(d["frame_dir"], d["frame_template"].format(d["key_frame_index"] + 1))
        assert os.path.isfile(frame)
        expected_name = "image_000061.jpg" if "data" in d["frame_dir"] else "-FaXLcSFjUI_000061.jpg"
        assert os.path.basename(frame) == expected_name


def test_missing_proposals_list_every_candidate(tmp_path):
    paths = lt.make_pyslowfast_tree(tmp_path)
    os.remove(os.path.join(paths["ann"], "person_box_67091280_iou90",
                           "ava_detection_val_boxes_and_labels.csv"))
    prefix = _register(tmp_path)
    with pytest.raises(FileNotFoundError) as e:
        DatasetCatalog.get(f"{prefix}_v2.2_val")
    assert "dense_proposals_val.pkl" in str(e.value) and "fair_0.85.pkl" in str(e.value)


def test_config_keys_set_proposals_and_frame_lists(tmp_path):
    lt.make_pyslowfast_tree(tmp_path)
    prefix = _register(tmp_path)
    # an MMAction2 pickle elsewhere, holding one key frame only
    pkl = str(tmp_path / "my_props.pkl")
    write_proposals({("-FaXLcSFjUI", 902): np.array([[0, 0, 0.5, 0.5, 0.7]], np.float32)},
                    pkl, "mmaction_pkl")
    cfg = setup_cfg(opts=["DATASETS.TEST", f"('{prefix}_v2.2_val',)",
                          "DATASETS.PROPOSAL_FILES_TEST", f"('{pkl}',)",
                          "DATASETS.AVA_FILES.FRAME_LISTS", "False"])  # applied by setup_cfg
    d = {(x["video_id"], x["timestamp"]): x for x in DatasetCatalog.get(f"{prefix}_v2.2_val")}
    assert d[("-FaXLcSFjUI", 902)]["proposals"]["scores"].tolist() == pytest.approx([0.7])
    assert len(d[("_145Aa_xkuE", 903)]["proposals"]["scores"]) == 0
    with pytest.raises(ValueError, match="one per dataset"):
        setup_cfg(opts=["DATASETS.TEST", f"('{prefix}_v2.2_val',)",
                        "DATASETS.PROPOSAL_FILES_TEST", "('a.pkl', 'b.pkl')"])
    with pytest.raises(ValueError, match="unknown file role"):
        set_split_files("x", gt_csv="y")


def test_ground_truth_pickle_given_as_csv(tmp_path):
    paths = lt.make_acar_tree(tmp_path)
    from acar_d2.data.datasets.ava import load_ava_instances

    with pytest.raises(ValueError, match="is a pickle.*convert_annotations.py acar-to-csv"):
        load_ava_instances(paths["gt_pkl"], os.path.join(
            paths["ann"], "ava_action_list_v2.2_for_activitynet_2019.pbtxt"))


def test_acar_annotation_pickle_to_rows(tmp_path):
    paths = lt.make_acar_tree(tmp_path)
    records, idx_to_class = read_acar_pickle(paths["gt_pkl"])
    rows = acar_records_to_rows(paths["gt_pkl"], records, idx_to_class)
    expected = [r for r in lt.GT if r[6] != 2]  # id 2 is not one of the 60 classes
    assert sorted(rows) == sorted(expected)
    assert records[0]["format_str"] == "image_%06d.jpg" and records[0]["mid_frame"] == 61


def test_proposal_formats_round_trip(tmp_path):
    props = {("-FaXLcSFjUI", 902): np.array([[0.1, 0.2, 0.5, 0.875, 0.96], [0.6, 0.1, 0.9, 0.8, 0.5]],
                                            np.float32),
             ("b", 1000): np.array([[0.0, 0.0, 1.0, 1.0, 0.25]], np.float32)}
    src = write_proposals(props, str(tmp_path / "p.csv"), "pyslowfast_csv")
    chain = [("p.pkl", "mmaction_pkl"), ("p_acar.pkl", "acar_pkl"), ("p2.csv", "pyslowfast_csv")]
    for name, fmt in chain:
        dst = str(tmp_path / name)
        assert convert_proposals(src, dst, fmt) == 2
        assert detect_proposal_format(dst) == fmt
        back = read_proposals(dst)
        assert set(back) == set(props)
        for k in props:
            np.testing.assert_allclose(back[k], props[k], atol=1e-6)
        src = dst
    with pytest.raises(FileExistsError):
        write_proposals(props, src, "pyslowfast_csv")
    with open(tmp_path / "odd.pkl", "wb") as f:
        pickle.dump([1, 2, 3], f)
    with pytest.raises(ValueError, match="unknown proposal pickle"):
        detect_proposal_format(str(tmp_path / "odd.pkl"))


def test_non_finite_or_pixel_proposals_refused_in_every_format(tmp_path):
    import pickle as pk

    bad = {"nan": [[0.1, 0.1, 0.5, 0.5, float("nan")]], "px": [[10.0, 10.0, 50.0, 50.0, 0.9]]}
    for what, rows in bad.items():
        recs = [{"video": "v", "time": 902, "labels": [{"bounding_box": r[:4], "score": r[4]}
                                                        for r in rows]}]
        with open(tmp_path / f"{what}.pkl", "wb") as f:
            pk.dump((recs, []), f)
        with pytest.raises(ValueError, match="finite with boxes normalized"):
            read_proposals(str(tmp_path / f"{what}.pkl"))
    (tmp_path / "nan.csv").write_text("v,0902,0.1,0.1,0.5,0.5,,nan\n")
    with pytest.raises(ValueError, match="finite"):
        read_proposals(str(tmp_path / "nan.csv"))


def _pyslowfast_config_tree(tmp_path):
    """The tree PySlowFast's configs/AVA/*.yaml describe: both person-box CSVs (and no other
    proposal file) in annotations/person_box_67091280_iou90/, v2.1 and v2.2 names."""
    paths = lt.make_pyslowfast_tree(tmp_path)
    ann = paths["ann"]
    boxes = os.path.join(ann, "person_box_67091280_iou90")
    train = "ava_detection_train_boxes_and_labels_include_negative"
    os.replace(os.path.join(ann, f"{train}_v2.2.csv"), os.path.join(boxes, f"{train}_v2.2.csv"))
    # v2.1: PySlowFast's train box file has no version suffix; the val file is shared
    shutil.copy(os.path.join(boxes, f"{train}_v2.2.csv"), os.path.join(boxes, f"{train}.csv"))
    for split in ("train", "val"):
        shutil.copy(os.path.join(ann, f"ava_{split}_v2.2.csv"),
                    os.path.join(ann, f"ava_{split}_v2.1.csv"))
        shutil.copy(os.path.join(ann, f"ava_{split}_excluded_timestamps_v2.2.csv"),
                    os.path.join(ann, f"ava_{split}_excluded_timestamps_v2.1.csv"))
    proposal_files = sorted(os.path.relpath(os.path.join(d, n), ann)
                            for d, _, names in os.walk(ann)
                            for n in names if "boxes" in n or n.endswith(".pkl"))
    assert proposal_files == [
        "person_box_67091280_iou90/ava_detection_train_boxes_and_labels_include_negative.csv",
        "person_box_67091280_iou90/ava_detection_train_boxes_and_labels_include_negative_v2.2.csv",
        "person_box_67091280_iou90/ava_detection_val_boxes_and_labels.csv"]
    return ann


@pytest.mark.parametrize("version", ["v2.1", "v2.2"])
def test_pyslowfast_config_tree_finds_person_box_folder(tmp_path, version):
    ann = _pyslowfast_config_tree(tmp_path)
    prefix = _register(tmp_path)
    for split in ("train", "val"):
        name = f"{prefix}_{version}_{split}"
        assert _expected_dicts(DatasetCatalog.get(name)) == EXPECTED
    # the file each split resolved to: the version's own, in PySlowFast's folder
    from acar_d2.data.layouts import FirstExisting, ava_proposal_candidates, resolve_path

    train = resolve_path(FirstExisting(ava_proposal_candidates(ann, "train", version)))
    suffix = "" if version == "v2.1" else "_v2.2"
    assert train == os.path.join(
        ann, "person_box_67091280_iou90",
        f"ava_detection_train_boxes_and_labels_include_negative{suffix}.csv")


@pytest.mark.parametrize("version", ["v2.1", "v2.2"])
@pytest.mark.parametrize("split", ["train", "val"])
def test_proposal_candidates_unique_and_in_pyslowfast_folder(split, version):
    from acar_d2.data.layouts import ava_proposal_candidates

    found = ava_proposal_candidates("ann", split, version)
    assert len(found) == len(set(found)), found
    folder = os.path.join("ann", "person_box_67091280_iou90")
    in_folder = [p for p in found if os.path.dirname(p) == folder]
    assert in_folder, found
    # the folder's copy is searched before the same name in annotations/
    for p in in_folder:
        assert found.index(p) < found.index(os.path.join("ann", os.path.basename(p)))
