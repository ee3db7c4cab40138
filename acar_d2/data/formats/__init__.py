"""
Readers, writers and converters of the AVA-adjacent file formats users already have: proposal
files (PySlowFast CSV, MMAction2 pickle, ACAR-Net pickle), ACAR-Net annotation pickles, CVAT
exports. The core AVA CSV / pbtxt readers stay in :mod:`ava_eval.ava_format`.
"""
from .acar_pickle import (
    acar_records_to_proposals,
    acar_records_to_rows,
    idx_to_class_from_label_map,
    make_acar_records,
    read_acar_pickle,
)
from .proposals import (
    PROPOSAL_FORMATS,
    convert_proposals,
    detect_proposal_format,
    read_proposals,
    write_proposals,
)

__all__ = [
    "PROPOSAL_FORMATS", "acar_records_to_proposals", "acar_records_to_rows", "convert_proposals",
    "detect_proposal_format", "idx_to_class_from_label_map", "make_acar_records", "read_acar_pickle",
    "read_proposals", "write_proposals",
]
