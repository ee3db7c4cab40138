"""AVA frame-mAP@0.5 (official protocol, vectorized), the AVAEvaluator and the CLI."""
from .ava_evaluation import AVAEvaluator, UCF24Evaluator, per_class_table
from ava_eval.frame_map import FrameMAPResult, frame_map

__all__ = ["AVAEvaluator", "UCF24Evaluator", "FrameMAPResult", "frame_map", "per_class_table"]
