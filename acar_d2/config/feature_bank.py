"""
The ``cfg.MODEL.FEATURE_BANK`` keys (ACFB and LFB, docs/FEATURE_BANKS.md); which bank a model
reads is checked by :mod:`acar_d2.config.bank_kind`.
"""
from detectron2.config import CfgNode as CN

__all__ = ["add_feature_bank_config"]


def add_feature_bank_config(cfg: CN) -> None:
    """
    Keys of the long-term feature banks (``cfg.MODEL.FEATURE_BANK``): ACAR's Actor-Context Feature
    Bank (ACFB, ACAR Sec. 3.3) and the Long-term Feature Bank baseline (LFB, Wu et al. CVPR 2019).
    The bank is written by ``tools/extract_feature_bank.py`` (see docs/FEATURE_BANKS.md).
    """
    _C = cfg
    _C.MODEL.FEATURE_BANK = CN()
    # What a bank entry is: "acfb" (per actor, the first-order actor-context relation map after the
    # head's down-sampling, (HIDDEN_DIM, h', w')) or "lfb" (per actor, the RoI feature vector).
    # The head decides (ACFBROIHeads "acfb", LFBROIHeads "lfb", others none): "" takes its kind
    # (setup_cfg writes it here), another value than the head's is an error
    # (acar_d2/config/bank_kind.py).
    _C.MODEL.FEATURE_BANK.KIND = ""
    # Folder of the bank: bank_record.json + videos/<video_id>.{npy,json} per video.
    _C.MODEL.FEATURE_BANK.DIR = ""
    # Clips in the window around the key frame, one per second (bank times t - n//2 ...
    # t + n - 1 - n//2): ACFB 19 clips spanning 21 s (ACAR Sec. 4), LFB 60 s (Wu et al.).
    _C.MODEL.FEATURE_BANK.WINDOW_SIZE = 19
    # Seconds between bank times (AVA and the synthetic world: one key frame per second).
    _C.MODEL.FEATURE_BANK.STRIDE = 1
    # Keep the bank entries of the key frame's own time in the window (ACAR/LFB: the window is
    # centred on the key frame and includes it).
    _C.MODEL.FEATURE_BANK.INCLUDE_CURRENT = True
    # Stacked bank-attention blocks (modified non-local: queries = current actors, keys/values =
    # the bank window): ACFB 2 (ACAR Sec. 3.3), LFB 2 (FBO NL, Wu et al.).
    _C.MODEL.FEATURE_BANK.NUM_LAYERS = 2
    # Dropout inside each block (LFB: 0.2; ACFB as HR2O: 0.2).
    _C.MODEL.FEATURE_BANK.DROPOUT = 0.2
    # At most this many bank entries (actors of the window) per clip; beyond it the entries farthest
    # from the key frame are dropped (0 = no limit).
    _C.MODEL.FEATURE_BANK.MAX_ENTRIES = 0
    # sha256 of the extraction model's weights file the bank must come from ("" = not checked);
    # training/testing refuse a bank_record.json with another one (a bank of another model).
    _C.MODEL.FEATURE_BANK.EXTRACTOR_SHA256 = ""
    # ACFB only: "none" (the paper's block) or "box_centre": the bank attention also compares the
    # current actor's box centre with each entry's (a relation map carries no position of its
    # actor, so without it an actor finds its own past entries only by appearance;
    # docs/FEATURE_BANKS.md "Where the long-range evidence goes").
    _C.MODEL.FEATURE_BANK.PLACE_ENCODING = "none"
