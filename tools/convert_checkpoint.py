#!/usr/bin/env python
"""
Convert a PySlowFast / Caffe2 / official ACAR-Net checkpoint to a detectron2-format file.

    python tools/convert_checkpoint.py --source auto INPUT OUTPUT.pth
    python tools/convert_checkpoint.py --source acar AVA_SLOWFAST_R50_ACAR_HR2O.pth.tar out.pth \
        --config-file configs/....yaml [KEY VALUE ...]   # also load it strictly into the model

Options and the two paths may come in any order; words after them that are not options are
config overrides for ``--config-file``. The output is
``{"model": state_dict, "__author__": "acar_d2 convert_checkpoint"}`` with ``backbone.*`` /
``roi_heads.*`` keys, loadable by ``ACARCheckpointer`` / ``MODEL.WEIGHTS``.

Refused (docs/SAFETY.md): OUTPUT equal to INPUT (always), an existing OUTPUT (unless
``--overwrite``), an input holding pickled objects other than plain data (unless
``--allow-unsafe-pickle``: loading such a file can run code from it).
A bad input ends as one line and exit status 2 (``--debug``: the traceback).
A thin command line around ``acar_d2.checkpoint.convert_file``; formats: ``docs/CHECKPOINTS.md``.
"""
import argparse
import sys
from typing import List, Optional

from acar_d2.checkpoint import (
    SOURCES,
    ACARCheckpointer,
    ConversionResult,
    check_output_path,
    convert_file,
)
from acar_d2.engine.cli import add_debug_flag, run_cli


def _check_with_model(config_file: str, opts: List[str], output_path: str) -> None:
    """Build the model of ``config_file`` and load ``output_path`` strictly (raises on mismatch)."""
    from detectron2.modeling import build_model

    from acar_d2.engine import setup_cfg

    cfg = setup_cfg(config_file, list(opts) + ["MODEL.DEVICE", "cpu"])
    model = build_model(cfg)
    ACARCheckpointer(model, strict=True).load(output_path)
    print(f"strict load into the model of {config_file}: OK")


def build_parser() -> argparse.ArgumentParser:
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
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    parser.add_argument(
        "--allow-unsafe-pickle", action="store_true",
        help="read an INPUT holding arbitrary pickled objects: this can RUN CODE from the file; "
             "only for files from a trusted source",
    )
    parser.add_argument("opts", nargs="*", help="KEY VALUE config overrides for --config-file")
    add_debug_flag(parser)
    return parser


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Options, paths and overrides in any order (``IN OUT --config-file CFG`` included)."""
    parser = build_parser()
    args = parser.parse_intermixed_args(argv)
    if args.opts and not args.config_file:
        parser.error(f"config overrides {args.opts} given without --config-file")
    if len(args.opts) % 2:
        parser.error(f"config overrides must be KEY VALUE pairs, got {args.opts}")
    return args


def main(argv: Optional[List[str]] = None) -> ConversionResult:
    args = parse_args(argv)
    try:
        check_output_path(args.input, args.output, args.overwrite)
    except (ValueError, FileExistsError) as e:
        sys.exit(str(e))
    result = convert_file(args.input, args.output, args.source, args.fusion_only_conv or None,
                          overwrite=args.overwrite, allow_unsafe_pickle=args.allow_unsafe_pickle)
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
    run_cli(main, prog="tools/convert_checkpoint.py")
