"""
The lowest floor of acar_d2, as ``detectron2.utils`` is detectron2's: small helpers that import no
other part of acar_d2 (only the standard library and third-party packages), so every other
subpackage may use them. ``tests/test_import_graph.py`` holds this.

* ``output_lock.py``: one job per output folder or file (``OutputLockedError``);
* ``cpu_memory.py``: freed CPU memory kept for the next forward (``keep_freed_memory``);
* ``thresholds.py``: the per-class score-thresholds file (``read_thresholds``);
* ``tracking.py``: the key-frame person tracker (norfair);
* ``visualizer.py``: drawing boxes, action labels and relation maps on frames;
* ``testing.py``: a literal (per clip, per actor) official ACAR head, the reference of tests and
  benchmarks.

What knows about acar_d2's own types lives with what it serves: relation maps in
``modeling/relation_maps.py``, the command-line error handling in ``engine/cli.py``.
"""
