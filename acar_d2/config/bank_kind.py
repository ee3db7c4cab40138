"""
Which long-term feature bank a model reads: one declaration, one check.

The ROI head class declares it (``bank_kind``: "acfb", "lfb", or "" = reads no bank;
``acar_d2/modeling/roi_heads/feature_bank_heads.py``); ``MODEL.FEATURE_BANK.KIND`` must say the
same. ``KIND: ""`` follows the head: :func:`resolve_bank_kind` writes the head's kind into the
config in ``acar_d2.engine.setup_cfg`` (so a run's ``config.yaml`` holds it), and
:func:`bank_kind_from_config` returns it where the config meets the model (``ACARNet``'s
``from_config``, the data mapper choice, the bank reader). A non-empty KIND other than the
head's is a ``ValueError`` naming both keys.

Lives below ``data`` and ``modeling`` (which may not import each other): both ask it.
"""
import logging

from detectron2.modeling import ROI_HEADS_REGISTRY

__all__ = ["bank_kind_of", "bank_kind_from_config", "resolve_bank_kind"]

logger = logging.getLogger(__name__)


def bank_kind_of(roi_heads) -> str:
    """
    The kind of long-term feature bank an ROI head reads: its class attribute ``bank_kind``
    ("acfb", "lfb"), or "" for a head that reads none (its ``forward`` takes no ``feature_bank``).

    Args:
        roi_heads: an ROI head module or class.
    """
    return str(getattr(roi_heads, "bank_kind", "") or "")


def _heads_of_kind(kind: str) -> str:
    names = sorted(name for name, cls in ROI_HEADS_REGISTRY if bank_kind_of(cls) == kind)
    return ", ".join(names) or "none is registered"


def bank_kind_from_config(cfg, roi_heads=None) -> str:
    """
    The bank kind the model of ``cfg`` reads, checked against ``MODEL.FEATURE_BANK.KIND``.

    Args:
        cfg: an acar_d2 config.
        roi_heads: the built head (module or class); default the class registered as
            ``MODEL.ROI_HEADS.NAME``. A name that is not registered (yet) cannot be checked here:
            ``KIND`` is returned as it is (``build_model`` names the unknown head).

    Returns:
        str: "acfb", "lfb" or "" (the head's; ``KIND`` "" follows it).

    Raises:
        ValueError: ``KIND`` is set and differs from the head's kind, naming both keys.
    """
    name = cfg.MODEL.ROI_HEADS.NAME
    kind = cfg.MODEL.FEATURE_BANK.KIND
    if roi_heads is None:
        if name not in ROI_HEADS_REGISTRY:
            return kind
        roi_heads = ROI_HEADS_REGISTRY.get(name)
    head_kind = bank_kind_of(roi_heads)
    if kind and kind != head_kind:
        if head_kind:
            reads = f"reads an {head_kind!r} feature bank"
            fix = f"set MODEL.FEATURE_BANK.KIND {head_kind!r}, or \"\" to follow the head"
        else:
            reads = "reads no feature bank"
            fix = (f"set MODEL.FEATURE_BANK.KIND \"\", or a head that reads an {kind!r} bank "
                   f"({_heads_of_kind(kind)})")
        raise ValueError(f"MODEL.ROI_HEADS.NAME={name} {reads} but MODEL.FEATURE_BANK.KIND="
                         f"{kind!r}; {fix}")
    return head_kind


def resolve_bank_kind(cfg) -> None:
    """
    ``MODEL.FEATURE_BANK.KIND`` "" takes the head's kind; a set one is checked against it
    (:func:`bank_kind_from_config`). ``cfg`` is not frozen; called by ``setup_cfg``.
    """
    kind = bank_kind_from_config(cfg)
    if kind != cfg.MODEL.FEATURE_BANK.KIND:
        cfg.MODEL.FEATURE_BANK.KIND = kind
        logger.info(f"MODEL.FEATURE_BANK.KIND {kind!r}: the bank {cfg.MODEL.ROI_HEADS.NAME} reads")
