"""
The ACAR head (ACAR Sec. 3, Fig. 2): first-order actor-context relation maps refined by stacked
High-order Relation Reasoning Operators (HR2O), which relate the actor-context relations of
different actors of the same clip at each spatial location (actor-context-actor relations).

Parameter names equal the official head's (``conv_reduce``, ``conv1``, ``conv2``,
``hr2o.{d}.{conv_q,conv_k,conv_v,conv,norm}``, ``fc1``, ``fc2``) so an official checkpoint's
``head.module.X`` maps to ``roi_heads.X`` unchanged.
"""
from typing import Dict

import torch
from torch import nn

from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import ROI_HEADS_REGISTRY

from .hr2o import build_hr2o
from .layout import ClipActorLayout, ValidRegion
from .relation_heads import ActorContextROIHeads

__all__ = ["ACARROIHeads"]


@ROI_HEADS_REGISTRY.register()
class ACARROIHeads(ActorContextROIHeads):
    """
    ACAR head: :class:`ActorContextROIHeads` + ``hr2o_depth`` HR2O blocks before the average pool.
    With ``hr2o_depth=0`` it equals :class:`ActorContextROIHeads`.
    """

    @configurable
    def __init__(
        self,
        *,
        hr2o_name: str = "nl",
        hr2o_depth: int = 2,
        hr2o_mlp_1x1: bool = False,
        hr2o_dropout: float = 0.2,
        **kwargs,
    ):
        """
        Args:
            hr2o_name: HR2O operator, "nl" (official), "gattn", "rn" or "avg" (ACAR Table 1b).
            hr2o_depth: number of stacked blocks (official R50: 2, R101: 1; ACAR Table 1e).
            hr2o_mlp_1x1: 1x1 instead of 3x3 output conv (official R101 config).
            hr2o_dropout: dropout inside each block (official: 0.2).
            kwargs: see :class:`ActorContextROIHeads`.
        """
        super().__init__(**kwargs)
        self.hr2o = nn.ModuleList(
            build_hr2o(
                hr2o_name, channels=self.hidden_dim, kernel_size=3,
                out_kernel_size=1 if hr2o_mlp_1x1 else 3, dropout=hr2o_dropout,
            )
            for _ in range(int(hr2o_depth))
        )

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        head_cfg = cfg.MODEL.ACTION_HEAD
        ret = super().from_config(cfg, input_shape)
        ret.update(
            hr2o_name=head_cfg.HR2O_NAME,
            hr2o_depth=head_cfg.HR2O_DEPTH,
            hr2o_mlp_1x1=head_cfg.HR2O_MLP_1X1,
            hr2o_dropout=head_cfg.HR2O_DROPOUT,
        )
        return ret

    def high_order(self, maps: torch.Tensor, layout: ClipActorLayout, region: ValidRegion) -> torch.Tensor:
        """(R, hidden, h', w') first-order maps -> refined maps, zero outside the valid cells."""
        mask = region.mask()
        for block in self.hr2o:  # the last one's weights are the relation maps (relation_maps.py)
            maps = block(maps, layout, mask)
        return maps
