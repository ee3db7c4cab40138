"""
``BankRecord``: what a feature-bank folder holds (its ``bank_record.json``) and the one rule for
whether a bank fits a model.

A record says what the bank's entries are (kind, entry shape), the config values they depend on
(``compat``: clip sampling and size, backbone widths, for ACFB the relation-map widths) and which
model wrote them (``extractor``: head, weights path, weights sha256, the extraction config).

:meth:`BankRecord.check_fits` is the rule, used by both sides of a bank folder:

* a model reading the bank (``FeatureBank`` / ``FeatureBankDatasetMapper``, the video predictor's
  pass 2) wants :meth:`BankRecord.wanted_by` its config: its kind, its settings, and with
  ``MODEL.FEATURE_BANK.EXTRACTOR_SHA256`` the extraction weights;
* an extraction into the folder (``tools/extract_feature_bank.py``, resumed or repeated; the video
  predictor's pass 1) wants its own record: the same kind, settings and extraction model.

Fields the wanted record leaves empty are not compared. The first mismatching field, in the order
format, kind, settings, extraction weights (sha256), entry shape, the rest of the extractor, is a
one-line ``ValueError`` naming the record file and the field, the same words on both sides.
"""
import dataclasses
import hashlib
import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..config import bank_kind_from_config

__all__ = ["RECORD_FILE", "FORMAT_VERSION", "BankRecord", "bank_compat_keys", "file_sha256"]

RECORD_FILE = "bank_record.json"
FORMAT_VERSION = 1
# The extractor fields after the weights sha256, in the order they are compared.
_EXTRACTOR_FIELDS = ("head", "weights", "config")


def file_sha256(path: str) -> str:
    """sha256 of a file (the extraction model's weights), read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def bank_compat_keys(cfg, kind: str) -> Dict[str, object]:
    """
    The config values a bank's entries depend on and a model reading it must share: clip sampling
    and size, backbone widths, and for ACFB the relation-map widths and down-sampling.
    """
    clip, sf, head = cfg.INPUT.CLIP, cfg.MODEL.SLOWFAST, cfg.MODEL.ACTION_HEAD
    keys = {
        "INPUT.CLIP.NUM_FRAMES": clip.NUM_FRAMES, "INPUT.CLIP.SAMPLING_RATE": clip.SAMPLING_RATE,
        "INPUT.CLIP.SHORT_SIDE": clip.SHORT_SIDE, "INPUT.CLIP.PAD_TO_SQUARE": clip.PAD_TO_SQUARE,
        "MODEL.SLOWFAST.WIDTH": sf.WIDTH, "MODEL.SLOWFAST.BETA_INV": sf.BETA_INV,
        "MODEL.SLOWFAST.RES5_DILATION": sf.RES5_DILATION,
        "MODEL.ROI_HEADS.IN_FEATURES": list(cfg.MODEL.ROI_HEADS.IN_FEATURES),
    }
    if sf.RES5_STRIDE:  # recorded only when set, so banks written before the key stay valid
        keys["MODEL.SLOWFAST.RES5_STRIDE"] = sf.RES5_STRIDE
    if clip.get("MAX_SIZE", 0):  # likewise (VideoMAE pipeline)
        keys["INPUT.CLIP.MAX_SIZE"] = clip.MAX_SIZE
    if cfg.MODEL.BACKBONE.NAME == "build_videomae_backbone":
        keys["MODEL.VIDEOMAE.EMBED_DIM"] = cfg.MODEL.VIDEOMAE.EMBED_DIM
    if kind == "acfb":
        keys.update({"MODEL.ACTION_HEAD.HIDDEN_DIM": head.HIDDEN_DIM,
                     "MODEL.ACTION_HEAD.DOWNSAMPLE": head.DOWNSAMPLE})
    return json.loads(json.dumps(keys))  # as stored in JSON (tuples -> lists)


def _flat(node, prefix: str = "") -> dict:
    out = {}
    for k, v in (node or {}).items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _config_difference(stored: str, wanted: str, ignore: Sequence[str] = ()) -> Optional[str]:
    """
    The first key in which two extraction configs (yaml dumps) differ, as "KEY: bank a vs this
    model b"; None when they are the same extraction: equal, or differing only in keys a later
    acar_d2 added, at their defaults (a bank written before such a key existed stays resumable),
    or in the keys of ``ignore``.
    """
    import yaml
    from detectron2.config import get_cfg

    from ..config import add_acar_config

    a, b = _flat(yaml.safe_load(stored or "")), _flat(yaml.safe_load(wanted or ""))
    for k in ignore:
        a.pop(k, None)
        b.pop(k, None)
    if a == b:
        return None
    defaults = get_cfg()
    add_acar_config(defaults)
    defaults = _flat(yaml.safe_load(defaults.dump()))
    for k in sorted(set(a) | set(b)):
        if k in a and (k not in b or a[k] != b[k]):
            return f"{k}: bank {a[k]!r} vs this model {b.get(k, '(unset)')!r}"
        if k not in a and (k not in defaults or defaults[k] != b[k]):
            return f"{k}: bank (unset) vs this model {b[k]!r}"
    return None


@dataclasses.dataclass
class BankRecord:
    """
    The content of ``bank_record.json`` (module docstring); a record used as the wanted side of
    :meth:`check_fits` may leave fields empty (not compared).

    Attributes:
        kind: "acfb" or "lfb".
        entry_shape: (C, h, w) of one actor's entry; None = not known (not compared).
        compat: config key -> value the entries depend on (:func:`bank_compat_keys`).
        extractor: "head", "weights", "weights_sha256", "config" (the extraction config's yaml).
        datasets: what was extracted (dataset names, or "video:<id>"); informative.
        format: version of the folder layout (``FORMAT_VERSION``).
        dtype, stride_s: entry dtype and seconds between bank times (informative).
    """

    kind: str
    entry_shape: Optional[Tuple[int, ...]] = None
    compat: Dict[str, Any] = dataclasses.field(default_factory=dict)
    extractor: Dict[str, str] = dataclasses.field(default_factory=dict)
    datasets: List[str] = dataclasses.field(default_factory=list)
    format: Optional[int] = FORMAT_VERSION
    dtype: str = "float16"
    stride_s: int = 1

    # ------------------------------------------------------------------ making one
    @classmethod
    def of_extraction(cls, cfg, kind: str, datasets=(), entry_shape=None) -> "BankRecord":
        """The record of an extraction by the model of ``cfg`` (with its ``MODEL.WEIGHTS``)."""
        weights = cfg.MODEL.WEIGHTS
        sha = file_sha256(weights) if weights and os.path.isfile(weights) else ""
        return cls(
            kind=kind,
            entry_shape=None if entry_shape is None else tuple(int(s) for s in entry_shape),
            compat=bank_compat_keys(cfg, kind),
            extractor={
                "head": cfg.MODEL.ROI_HEADS.NAME,
                "weights": weights,
                "weights_sha256": sha,
                "config": cfg.dump(),
            },
            datasets=sorted(datasets),
        )

    @classmethod
    def wanted_by(cls, cfg) -> "BankRecord":
        """What the model of ``cfg`` needs of a bank it reads: its kind (checked against its head,
        ``acar_d2.config.bank_kind_from_config``), its settings, and with
        ``MODEL.FEATURE_BANK.EXTRACTOR_SHA256`` the extraction weights."""
        kind = bank_kind_from_config(cfg)
        sha = cfg.MODEL.FEATURE_BANK.EXTRACTOR_SHA256
        return cls(kind=kind, compat=bank_compat_keys(cfg, kind),
                   extractor={"weights_sha256": sha} if sha else {})

    # ------------------------------------------------------------------ file
    @classmethod
    def load(cls, root: str) -> "BankRecord":
        """
        ``root/bank_record.json`` (any version; :meth:`check_fits` refuses another format).

        Raises:
            FileNotFoundError / ValueError: no record, or not a JSON object (naming the file).
        """
        path = os.path.join(root, RECORD_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{path} not found: {root!r} is not a feature bank (MODEL.FEATURE_BANK.DIR; write "
                "one with tools/extract_feature_bank.py)")
        try:
            with open(path) as f:
                d = json.load(f)
        except ValueError as e:
            raise ValueError(f"{path}: not a bank record ({e})") from None
        if not isinstance(d, dict):
            raise ValueError(f"{path}: not a bank record (a JSON object is expected)")
        names = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        d.setdefault("kind", "")
        d.setdefault("format", None)
        if d.get("entry_shape") is not None:
            d["entry_shape"] = tuple(int(s) for s in d["entry_shape"])
        return cls(**d)

    def to_dict(self) -> dict:
        """The JSON object written to ``bank_record.json``."""
        d = dataclasses.asdict(self)
        d["entry_shape"] = list(self.entry_shape or ())
        return d

    def write(self, root: str) -> None:
        """
        Write this record as ``root/bank_record.json`` (atomically) when the folder has none; when
        it has one, it must be this extraction (:meth:`check_folder`): nothing is written over.
        """
        if self.check_folder(root):
            return
        os.makedirs(root, exist_ok=True)
        path = os.path.join(root, RECORD_FILE)
        with open(path + ".tmp", "w") as f:
            json.dump(self.to_dict(), f, indent=1, sort_keys=True)
        os.replace(path + ".tmp", path)

    def check_folder(self, root: str) -> bool:
        """
        Whether ``root`` holds a record already; if so, it must fit this one (an extraction
        resumed or repeated into its own folder).

        Raises:
            ValueError: the folder holds another bank (:meth:`check_fits`).
        """
        if not os.path.isfile(os.path.join(root, RECORD_FILE)):
            return False
        BankRecord.load(root).check_fits(self, root)
        return True

    # ------------------------------------------------------------------ the rule
    def check_readable_by(self, cfg, root: str) -> None:
        """:meth:`check_fits` with what the model of ``cfg`` wants (:meth:`wanted_by`)."""
        self.check_fits(BankRecord.wanted_by(cfg), root)

    def check_fits(self, wanted: "BankRecord", root: str) -> None:
        """
        The compatibility rule (module docstring): this record, stored in ``root``, against what a
        reader or an extraction wants.

        Raises:
            ValueError: "<root>/bank_record.json does not fit this model: <field>: bank <value>
                vs this model <value>; ...".
        """
        why = self._first_mismatch(wanted)
        if why:
            raise ValueError(
                f"{os.path.join(root, RECORD_FILE)} does not fit this model: {why}; write this "
                "model's bank into another folder with tools/extract_feature_bank.py (a bank "
                "folder is never written over)")

    def _first_mismatch(self, wanted: "BankRecord") -> Optional[str]:
        if self.format != FORMAT_VERSION:
            return f"format: bank {self.format!r} vs this acar_d2 {FORMAT_VERSION!r}"
        if self.kind != wanted.kind:
            return f"kind: bank {self.kind!r} vs this model {wanted.kind!r}"
        bad = [f"{k}: bank {self.compat.get(k)!r} vs this model {v!r}"
               for k, v in sorted(wanted.compat.items()) if self.compat.get(k) != v]
        if bad:
            return "settings " + ", ".join(bad)
        mine, want = self.extractor, wanted.extractor
        if want.get("weights_sha256") and mine.get("weights_sha256") != want["weights_sha256"]:
            return (f"extractor.weights_sha256: bank {str(mine.get('weights_sha256'))[:12]!r} "
                    f"(weights {mine.get('weights')!r}) vs this model "
                    f"{want['weights_sha256'][:12]!r}")
        if wanted.entry_shape is not None and tuple(self.entry_shape or ()) != wanted.entry_shape:
            return f"entry_shape: bank {self.entry_shape!r} vs this model {wanted.entry_shape!r}"
        # the same weights (equal sha256) read from another path (a copy, a link) fit
        same_weights = bool(mine.get("weights_sha256")) and (
            mine["weights_sha256"] == want.get("weights_sha256"))
        for k in _EXTRACTOR_FIELDS:
            if not want.get(k) or (k == "weights" and same_weights):
                continue
            if k == "config":
                # OUTPUT_DIR does not change what is extracted
                diff = _config_difference(mine.get(k, ""), want[k], ("OUTPUT_DIR",) + (
                    ("MODEL.WEIGHTS",) if same_weights else ()))
                if diff:
                    return f"extractor.config {diff}"
            elif mine.get(k) != want[k]:
                return f"extractor.{k}: bank {mine.get(k)!r} vs this model {want[k]!r}"
        return None
