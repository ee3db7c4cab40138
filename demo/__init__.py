"""The demo (detectron2's layout): ``predictor.py`` annotates a whole video, ``demo.py`` is the
command (``python demo/demo.py``, also ``python tools/demo.py``)."""
