"""
Key renaming between checkpoint formats and acar_d2's parameter names (pure functions on strings).

Four source vocabularies map to the SlowFast names of ``acar_d2.modeling.backbone.slowfast``
(see its module docstring), always for one tensor at a time, and ``None`` means "no mapping":

* official ACAR-Net backbone keys (``slow_res1.0.conv1.weight``, ``Tconv1.0.weight``, ...),
* PySlowFast ``model_state`` keys (``s2.pathway0_res0.branch2.a.weight``, ...),
* PySlowFast Caffe2 blob names (``res2_0_branch2a_w``, ``t_res2_0_branch2a_bn_riv``, ...),

as described in ``docs/CHECKPOINTS.md`` (section 4, one table row per rule below). Stage
numbering: ACAR ``res1..res4`` = ResNet/acar_d2 ``res2..res5`` = PySlowFast ``s2..s5``.
"""
import re
from typing import Optional

__all__ = [
    "acar_backbone_to_d2",
    "pyslowfast_to_d2",
    "pyslowfast_head_to_d2",
    "caffe2_to_d2",
    "videomae_to_d2",
    "FUSE_SOURCES",
]

PATHWAYS = ("slow", "fast")
# Lateral k (ACAR Tconv{k}, PySlowFast s{k}_fuse) reads the fast output of this acar_d2 stage.
FUSE_SOURCES = {1: "stem", 2: "res2", 3: "res3", 4: "res4"}
BN_STATS = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
# Caffe2 BN blob suffixes (docs/CHECKPOINTS.md: _riv is loaded as running_var unchanged).
C2_BN_SUFFIX = {"s": "weight", "b": "bias", "rm": "running_mean", "riv": "running_var"}
C2_CONV_SUFFIX = {"w": "weight", "b": "bias"}
BRANCH2 = {"a": 1, "b": 2, "c": 3}


def acar_backbone_to_d2(key: str) -> Optional[str]:
    """
    Official ACAR-Net SlowFast key (no prefix) -> acar_d2 backbone key (no ``backbone.``).

    Returns None for keys outside the SlowFast vocabulary.
    """
    m = re.fullmatch(r"(slow|fast)_conv1\.weight", key)
    if m:
        return f"{m[1]}.stem.conv.weight"
    m = re.fullmatch(rf"(slow|fast)_bn1\.{BN_STATS}", key)
    if m:
        return f"{m[1]}.stem.bn.{m[2]}"
    m = re.fullmatch(r"(slow|fast)_res([1-4])\.(\d+)\.conv([123])\.weight", key)
    if m:
        return f"{m[1]}.res{int(m[2]) + 1}.{m[3]}.conv{m[4]}.weight"
    m = re.fullmatch(rf"(slow|fast)_res([1-4])\.(\d+)\.bn([123])\.{BN_STATS}", key)
    if m:
        return f"{m[1]}.res{int(m[2]) + 1}.{m[3]}.bn{m[4]}.{m[5]}"
    m = re.fullmatch(r"(slow|fast)_res([1-4])\.(\d+)\.downsample\.0\.weight", key)
    if m:
        return f"{m[1]}.res{int(m[2]) + 1}.{m[3]}.shortcut.weight"
    m = re.fullmatch(rf"(slow|fast)_res([1-4])\.(\d+)\.downsample_bn\.{BN_STATS}", key)
    if m:
        return f"{m[1]}.res{int(m[2]) + 1}.{m[3]}.shortcut_bn.{m[4]}"
    # Lateral: R50 config is Sequential(conv, BN) -> Tconv{k}.0 / .1; R101 a bare conv.
    m = re.fullmatch(r"Tconv([1-4])(?:\.0)?\.weight", key)
    if m:
        return f"fuse.{FUSE_SOURCES[int(m[1])]}.conv.weight"
    m = re.fullmatch(rf"Tconv([1-4])\.1\.{BN_STATS}", key)
    if m:
        return f"fuse.{FUSE_SOURCES[int(m[1])]}.bn.{m[2]}"
    return None


def pyslowfast_to_d2(key: str) -> Optional[str]:
    """
    PySlowFast SlowFast ``model_state`` key -> acar_d2 backbone key (no ``backbone.``).

    Returns None for keys outside the backbone vocabulary (e.g. the Kinetics ``head.*``).
    """
    m = re.fullmatch(r"s1\.pathway([01])_stem\.conv\.weight", key)
    if m:
        return f"{PATHWAYS[int(m[1])]}.stem.conv.weight"
    m = re.fullmatch(rf"s1\.pathway([01])_stem\.bn\.{BN_STATS}", key)
    if m:
        return f"{PATHWAYS[int(m[1])]}.stem.bn.{m[2]}"
    m = re.fullmatch(r"s([1-4])_fuse\.conv_f2s\.weight", key)
    if m:
        return f"fuse.{FUSE_SOURCES[int(m[1])]}.conv.weight"
    m = re.fullmatch(rf"s([1-4])_fuse\.bn\.{BN_STATS}", key)
    if m:
        return f"fuse.{FUSE_SOURCES[int(m[1])]}.bn.{m[2]}"
    m = re.fullmatch(r"s([2-5])\.pathway([01])_res(\d+)\.branch2\.([abc])\.weight", key)
    if m:
        return f"{PATHWAYS[int(m[2])]}.res{m[1]}.{m[3]}.conv{BRANCH2[m[4]]}.weight"
    m = re.fullmatch(rf"s([2-5])\.pathway([01])_res(\d+)\.branch2\.([abc])_bn\.{BN_STATS}", key)
    if m:
        return f"{PATHWAYS[int(m[2])]}.res{m[1]}.{m[3]}.bn{BRANCH2[m[4]]}.{m[5]}"
    m = re.fullmatch(r"s([2-5])\.pathway([01])_res(\d+)\.branch1\.weight", key)
    if m:
        return f"{PATHWAYS[int(m[2])]}.res{m[1]}.{m[3]}.shortcut.weight"
    m = re.fullmatch(rf"s([2-5])\.pathway([01])_res(\d+)\.branch1_bn\.{BN_STATS}", key)
    if m:
        return f"{PATHWAYS[int(m[2])]}.res{m[1]}.{m[3]}.shortcut_bn.{m[4]}"
    # Non-local blocks exist only in the slow pathway (pathway0).
    m = re.fullmatch(
        r"s([2-5])\.pathway0_nonlocal(\d+)\.(conv_theta|conv_phi|conv_g|conv_out)\.(weight|bias)",
        key,
    )
    if m:
        return f"slow.res{m[1]}.nonlocal{m[2]}.{m[3]}.{m[4]}"
    m = re.fullmatch(rf"s([2-5])\.pathway0_nonlocal(\d+)\.bn\.{BN_STATS}", key)
    if m:
        return f"slow.res{m[1]}.nonlocal{m[2]}.bn.{m[3]}"
    return None


def pyslowfast_head_to_d2(key: str) -> Optional[str]:
    """
    PySlowFast classifier key -> ``PySlowFastROIHeads`` key (no ``roi_heads.``): ``head.projection.
    {weight,bias}`` (``.pyth`` / PySlowFast pickles) and Caffe2's ``pred_w`` / ``pred_b``. Only used
    when the model has that head; otherwise these keys are the dropped Kinetics classifier.
    """
    m = re.fullmatch(r"head\.projection\.(weight|bias)", key)
    if m:
        return f"projection.{m[1]}"
    return {"pred_w": "projection.weight", "pred_b": "projection.bias"}.get(key)


def caffe2_to_d2(blob: str) -> Optional[str]:
    """
    PySlowFast Caffe2 blob name -> acar_d2 backbone key (no ``backbone.``).

    Fast-pathway blobs carry a ``t_`` prefix. Returns None for names outside the vocabulary
    (e.g. the classifier ``pred_w``).
    """
    m = re.fullmatch(r"(t_)?conv1_w", blob)
    if m:
        return f"{'fast' if m[1] else 'slow'}.stem.conv.weight"
    m = re.fullmatch(r"(t_)?res_conv1_bn_(s|b|rm|riv)", blob)
    if m:
        return f"{'fast' if m[1] else 'slow'}.stem.bn.{C2_BN_SUFFIX[m[2]]}"
    # Laterals: after the stem "t_pool1_subsample", after stage k the last block's name of the
    # fast stage k + "_bn_subsample" (checked before the plain branch2c rules below).
    m = re.fullmatch(r"t_pool1_subsample_w", blob)
    if m:
        return "fuse.stem.conv.weight"
    m = re.fullmatch(r"t_pool1_subsample_bn_(s|b|rm|riv)", blob)
    if m:
        return f"fuse.stem.bn.{C2_BN_SUFFIX[m[1]]}"
    m = re.fullmatch(r"t_res([2-4])_\d+_branch2c_bn_subsample_w", blob)
    if m:
        return f"fuse.res{m[1]}.conv.weight"
    m = re.fullmatch(r"t_res([2-4])_\d+_branch2c_bn_subsample_bn_(s|b|rm|riv)", blob)
    if m:
        return f"fuse.res{m[1]}.bn.{C2_BN_SUFFIX[m[2]]}"
    m = re.fullmatch(r"(t_)?res([2-5])_(\d+)_branch2([abc])_w", blob)
    if m:
        return f"{'fast' if m[1] else 'slow'}.res{m[2]}.{m[3]}.conv{BRANCH2[m[4]]}.weight"
    m = re.fullmatch(r"(t_)?res([2-5])_(\d+)_branch2([abc])_bn_(s|b|rm|riv)", blob)
    if m:
        p = "fast" if m[1] else "slow"
        return f"{p}.res{m[2]}.{m[3]}.bn{BRANCH2[m[4]]}.{C2_BN_SUFFIX[m[5]]}"
    m = re.fullmatch(r"(t_)?res([2-5])_(\d+)_branch1_w", blob)
    if m:
        return f"{'fast' if m[1] else 'slow'}.res{m[2]}.{m[3]}.shortcut.weight"
    m = re.fullmatch(r"(t_)?res([2-5])_(\d+)_branch1_bn_(s|b|rm|riv)", blob)
    if m:
        p = "fast" if m[1] else "slow"
        return f"{p}.res{m[2]}.{m[3]}.shortcut_bn.{C2_BN_SUFFIX[m[4]]}"
    # Non-local (PySlowFast's converter: nonlocal_conv{s}_{i}_{theta,phi,g,out}_{w,b} and
    # nonlocal_conv{s}_{i}_bn_{s,b,rm,riv} -> s{s}.pathway0_nonlocal{i}.*).
    m = re.fullmatch(r"nonlocal_conv([2-5])_(\d+)_(theta|phi|g|out)_(w|b)", blob)
    if m:
        return f"slow.res{m[1]}.nonlocal{m[2]}.conv_{m[3]}.{C2_CONV_SUFFIX[m[4]]}"
    m = re.fullmatch(r"nonlocal_conv([2-5])_(\d+)_bn_(s|b|rm|riv)", blob)
    if m:
        return f"slow.res{m[1]}.nonlocal{m[2]}.bn.{C2_BN_SUFFIX[m[3]]}"
    return None


# Official VideoMAE ViT keys (MCG-NJU/VideoMAE-Action-Detection ``VisionTransformer``): the same
# names as acar_d2's VideoMAE backbone (acar_d2/modeling/backbone/videomae.py).
_VIDEOMAE_BACKBONE = re.compile(
    r"patch_embed\.proj\.(weight|bias)"
    r"|blocks\.\d+\.(norm1|norm2)\.(weight|bias)"
    r"|blocks\.\d+\.attn\.(q_bias|v_bias|qkv\.weight|proj\.weight|proj\.bias)"
    r"|blocks\.\d+\.mlp\.fc[12]\.(weight|bias)"
    r"|norm\.(weight|bias)"
)
# Prefixes the official fine-tuning strips (``backbone.`` and the MAE pre-training ``encoder.``).
VIDEOMAE_PREFIXES = ("backbone.", "encoder.")


def strip_videomae_prefix(key: str) -> str:
    """One leading ``backbone.`` or ``encoder.`` removed (official ``run_class_finetuning.py``)."""
    for prefix in VIDEOMAE_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def videomae_to_d2(key: str, keep_classifier: bool = False) -> Optional[str]:
    """
    Official VideoMAE key (``module.`` already stripped) -> acar_d2 key: ``backbone.<key>`` for
    the ViT, ``roi_heads.projection.{weight,bias}`` for the linear ``head`` when
    ``keep_classifier`` (a model with ``VideoMAEROIHeads``).

    Returns None for keys outside the vocabulary (the caller decides whether they are droppable).
    """
    key = strip_videomae_prefix(key)
    if _VIDEOMAE_BACKBONE.fullmatch(key):
        return "backbone." + key
    m = re.fullmatch(r"head\.(weight|bias)", key)
    if m and keep_classifier:
        return f"roi_heads.projection.{m[1]}"
    return None
