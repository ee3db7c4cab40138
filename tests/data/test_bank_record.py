"""
``BankRecord`` (acar_d2/data/bank_record.py): the bank_record.json round trip (records of the
earlier code read and written back byte for byte), and the one compatibility rule: a bank of
another kind, of other head settings, or from other extraction weights is refused by a model
reading it (``FeatureBank``, as the data mapper opens it) and by an extraction into its folder
(``BankRecord.write``, as tools/extract_feature_bank.py resumes) with the same message, and the
folder is left as it was.
"""
import hashlib
import json
import re
from pathlib import Path

import pytest

from acar_d2.data.bank_record import RECORD_FILE, BankRecord, bank_compat_keys, file_sha256
from acar_d2.data.feature_bank import FeatureBank
from acar_d2.engine import setup_cfg

REPO = Path(__file__).resolve().parents[2]
SHAPE = (32, 5, 5)  # the synthetic world's ACFB entry


def _cfg(name: str, *opts):
    return setup_cfg(str(REPO / "configs" / "Synthetic" / f"{name}_SLOWFAST_R18_1.5k_aca_world.yaml"),
                     ["MODEL.DEVICE", "cpu", *opts])


def _weights(path: Path, content: bytes) -> str:
    path.write_bytes(content)  # only its sha256 is read here
    return str(path)


@pytest.fixture
def bank(tmp_path):
    """A folder holding the ACFB bank record of the ACAR model with weights w0."""
    w0 = _weights(tmp_path / "w0.pth", b"model zero")
    root = tmp_path / "bank"
    BankRecord.of_extraction(_cfg("acar", "MODEL.WEIGHTS", w0), "acfb", ["train"], SHAPE).write(str(root))
    return root, w0


def test_round_trip_and_the_earlier_format(bank, tmp_path):
    root, w0 = bank
    text = (root / RECORD_FILE).read_text()
    record = BankRecord.load(str(root))
    assert record.kind == "acfb" and record.entry_shape == SHAPE and record.datasets == ["train"]
    assert record.extractor["weights_sha256"] == hashlib.sha256(b"model zero").hexdigest()
    assert record.extractor["weights"] == w0 and record.extractor["head"] == "ACARROIHeads"
    assert record.compat == bank_compat_keys(_cfg("acar"), "acfb")
    record.write(str(tmp_path / "copy"))
    assert (tmp_path / "copy" / RECORD_FILE).read_text() == text
    assert BankRecord.load(str(tmp_path / "copy")) == record
    # the JSON of the code before BankRecord (make_bank_record + json.dump(indent=1, sort_keys))
    earlier = {"format": 1, "kind": "lfb", "dtype": "float16", "entry_shape": [20, 1, 1],
               "stride_s": 1, "datasets": ["a", "b"], "compat": {"INPUT.CLIP.NUM_FRAMES": 4},
               "extractor": {"head": "ACARROIHeads", "weights": "w.pth", "weights_sha256": "ab" * 32,
                             "config": "MODEL:\n  DEVICE: cpu\n"}}
    old = tmp_path / "old"
    old.mkdir()
    (old / RECORD_FILE).write_text(json.dumps(earlier, indent=1, sort_keys=True))
    assert BankRecord.load(str(old)).to_dict() == earlier
    new = tmp_path / "new"
    BankRecord.load(str(old)).write(str(new))
    assert (new / RECORD_FILE).read_text() == (old / RECORD_FILE).read_text()


def test_load_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path}/{RECORD_FILE} not found")):
        BankRecord.load(str(tmp_path))
    (tmp_path / RECORD_FILE).write_text("{not json")
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path}/{RECORD_FILE}: not a bank record")):
        BankRecord.load(str(tmp_path))
    (tmp_path / RECORD_FILE).write_text(json.dumps({"format": 2, "kind": "acfb"}))
    with pytest.raises(ValueError, match="does not fit this model: format: bank 2 vs this acar_d2 1;"):
        FeatureBank(str(tmp_path), _cfg("acfb"))


def _refusals(root: Path, reader_cfg, extraction: BankRecord):
    """The messages of the reader and of the extraction, and whether the folder stayed."""
    before = (root / RECORD_FILE).read_bytes()
    with pytest.raises(ValueError) as read:
        FeatureBank(str(root), reader_cfg)
    with pytest.raises(ValueError) as write:
        extraction.write(str(root))
    assert (root / RECORD_FILE).read_bytes() == before
    return str(read.value), str(write.value)


def test_one_rule_for_reader_and_extraction(bank, tmp_path):
    root, w0 = bank
    head = f"{root}/{RECORD_FILE} does not fit this model: "
    tail = ("; write this model's bank into another folder with tools/extract_feature_bank.py (a "
            "bank folder is never written over)")
    # another kind: an LFB model reads it / an LFB extraction resumes into it
    read, write = _refusals(root, _cfg("lfb"), BankRecord.of_extraction(
        _cfg("acar", "MODEL.WEIGHTS", w0), "lfb", ["train"], (20, 1, 1)))
    assert read == write == head + "kind: bank 'acfb' vs this model 'lfb'" + tail
    # other head settings (relation-map width)
    read, write = _refusals(root, _cfg("acfb", "MODEL.ACTION_HEAD.HIDDEN_DIM", "16"),
                            BankRecord.of_extraction(_cfg("acar", "MODEL.WEIGHTS", w0,
                                                          "MODEL.ACTION_HEAD.HIDDEN_DIM", "16"),
                                                     "acfb", ["train"], (16, 5, 5)))
    assert read == write == head + "settings MODEL.ACTION_HEAD.HIDDEN_DIM: bank 32 vs this model 16" + tail
    # other extraction weights: pinned by the reader's EXTRACTOR_SHA256 / the extraction's weights
    w1 = _weights(tmp_path / "w1.pth", b"model one")
    sha0, sha1 = file_sha256(w0), file_sha256(w1)
    read, write = _refusals(root, _cfg("acfb", "MODEL.FEATURE_BANK.EXTRACTOR_SHA256", sha1),
                            BankRecord.of_extraction(_cfg("acar", "MODEL.WEIGHTS", w1), "acfb",
                                                     ["train"], SHAPE))
    assert read == write == (head + f"extractor.weights_sha256: bank {sha0[:12]!r} (weights "
                             f"{w0!r}) vs this model {sha1[:12]!r}" + tail)
    # what fits is accepted by both
    FeatureBank(str(root), _cfg("acfb", "MODEL.FEATURE_BANK.EXTRACTOR_SHA256", sha0))
    BankRecord.of_extraction(_cfg("acar", "MODEL.WEIGHTS", w0), "acfb", ["val"], SHAPE).write(str(root))
    assert BankRecord.load(str(root)).datasets == ["train"]  # the first extraction's record stays


def test_the_same_weights_from_another_folder_fit(bank, tmp_path):
    """An extraction resumed with the same weights (equal sha256) read from another path - a
    copy or a link, another OUTPUT_DIR - fits the folder; other weights at the old path do not."""
    root, w0 = bank
    copy = tmp_path / "elsewhere" / "w0.pth"
    copy.parent.mkdir()
    _weights(copy, b"model zero")
    BankRecord.of_extraction(_cfg("acar", "MODEL.WEIGHTS", str(copy), "OUTPUT_DIR", str(copy.parent)),
                             "acfb", ["train"], SHAPE).write(str(root))
    assert BankRecord.load(str(root)).extractor["weights"] == w0  # nothing written over
    Path(w0).write_bytes(b"model changed")
    with pytest.raises(ValueError, match="extractor.weights_sha256"):
        BankRecord.of_extraction(_cfg("acar", "MODEL.WEIGHTS", w0), "acfb", ["train"],
                                 SHAPE).write(str(root))
