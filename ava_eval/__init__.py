"""
ava_eval: the official AVA frame-mAP@0.5 and the AVA file formats, in NumPy and the standard
library only (no torch, no detectron2, no acar_d2), so that the command line ``acar-ava-eval``
(``python -m ava_eval``, ``cli.py``) starts at once. acar_d2's dataset loaders and
``AVAEvaluator`` use it too.

* ``csv_io.py``: every AVA CSV read or written (box CSVs, exclusions, annotations, person boxes,
  submission rows);
* ``label_map.py``: label maps (+ the packaged 60-class AVA list);
* ``frame_map.py``: the frame-mAP (official protocol, vectorized);
* ``evaluate.py``: ``evaluate_files`` (the files of the official evaluation -> result), ``summarize``;
* ``reporting.py``: tables, per-class plots, summaries;
* ``cli.py`` (+ ``__main__.py``): the command line.

Imports nothing at package level: ``import ava_eval.frame_map`` loads only what it needs.
"""
