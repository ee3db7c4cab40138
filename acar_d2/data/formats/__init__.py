"""
Readers, writers and converters of the AVA-adjacent file formats users already have: proposal
files (PySlowFast CSV, MMAction2 pickle, ACAR-Net pickle), ACAR-Net annotation pickles, CVAT
exports. The AVA CSVs themselves are read and written by :mod:`ava_eval.csv_io`, the label map by
:mod:`ava_eval.label_map`.
"""
from .acar_pickle import (
    acar_pickle_to_csv,
    acar_records_to_proposals,
    acar_records_to_rows,
    idx_to_class_from_label_map,
    csv_to_acar_pickle,
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
    "PROPOSAL_FORMATS", "acar_pickle_to_csv", "acar_records_to_proposals", "csv_to_acar_pickle", "acar_records_to_rows", "convert_proposals",
    "detect_proposal_format", "idx_to_class_from_label_map", "make_acar_records", "read_acar_pickle",
    "read_proposals", "write_proposals",
]
