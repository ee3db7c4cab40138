#!/usr/bin/env python
"""
Convert a PySlowFast / Caffe2 / official ACAR-Net checkpoint to a detectron2-format file.

    python tools/convert_checkpoint.py --source auto INPUT OUTPUT.pth
    python tools/convert_checkpoint.py --source acar AVA_SLOWFAST_R50_ACAR_HR2O.pth.tar out.pth \
        --config-file configs/....yaml   # also load it strictly into the built model

The output is ``{"model": state_dict, "__author__": "acar_d2 convert_checkpoint"}`` with
``backbone.*`` / ``roi_heads.*`` keys, loadable by ``ACARCheckpointer`` / ``MODEL.WEIGHTS``.
A thin command line around ``acar_d2.checkpoint.convert_file``; formats: ``docs/CHECKPOINTS.md``.
"""
import argparse
import sys
from typing import List, Optional

from acar_d2.checkpoint import SOURCES, ACARCheckpointer, ConversionResult, convert_file


def _check_with_model(config_file: str, opts: List[str], output_path: str) -> None:
    """Build the model of ``config_file`` and load ``output_path`` strictly (raises on mismatch)."""
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model

    import acar_d2  # noqa: F401  (registers the components)

    cfg = get_cfg()
    acar_d2.add_acar_config(cfg)
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(opts)
    cfg.MODEL.DEVICE = "cpu"
    model = build_model(cfg)
    ACARCheckpointer(model, strict=True).load(output_path)
    print(f"strict load into the model of {config_file}: OK")


def main(argv: Optional[List[str]] = None) -> ConversionResult:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--source", default="auto", choices=SOURCES)
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument(
        "--fusion-only-conv",
        action="store_true",
        help="target uses plain-conv laterals (official R101): lateral BNs in INPUT are an error",
    )
    parser.add_argument("--config-file", default="", help="optional: verify by a strict load")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides for --config-file")
    args = parser.parse_args(argv)
    result = convert_file(args.input, args.output, args.source, args.fusion_only_conv or None)
    num_backbone = sum(k.startswith("backbone.") for k in result.state)
    print(f"source: {result.source}")
    print(
        f"converted {len(result.state)} tensors "
        f"({num_backbone} backbone, {len(result.state) - num_backbone} roi_heads) -> {args.output}"
    )
    print(f"dropped {len(result.dropped)} documented keys: " + ", ".join(result.dropped[:10])
          + (" ..." if len(result.dropped) > 10 else ""))
    if args.config_file:
        _check_with_model(args.config_file, args.opts, args.output)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
