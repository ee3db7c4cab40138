"""
``TimedFrameBuffer``: the frames of a decoded-once stream with their presentation times, serving
the clips around key frames without seeking (the video predictors' key-frame loop).
"""
from collections import deque
from typing import Deque, Sequence

import numpy as np

from .timing import TIME_EPS, frames_on_screen
from .video_source import VideoSourceError, as_rgb

__all__ = ["TimedFrameBuffer"]


class TimedFrameBuffer:
    """
    The frames of a stream with their presentation times, kept while a clip may still need them:
    serves "the frames on screen at these times" (:func:`~acar_d2.data.video_io.timing.frames_on_screen`)
    without seeking, for any source rate, constant or variable.

    Frames enter in display order (:meth:`append`), as RGB arrays or as decoder frames converted to
    RGB only when read; :meth:`drop_before` forgets the frames no clip needs any more (the frame on
    screen at the given time is kept). Absolute indices count every frame appended.
    """

    def __init__(self):
        self._times: Deque[float] = deque()
        self._frames: Deque[object] = deque()
        self.end = 0  # absolute index one past the newest frame

    @property
    def start(self) -> int:
        """Absolute index of the oldest frame kept."""
        return self.end - len(self._frames)

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def newest_time(self) -> float:
        """Presentation time of the newest frame (-inf when empty)."""
        return self._times[-1] if self._times else float("-inf")

    def append(self, time: float, frame) -> int:
        """Add the next frame shown from ``time`` (seconds, increasing); returns its index."""
        if self._times and time < self._times[-1]:
            raise VideoSourceError(f"frame {self.end} is at {time:.6f} s, before the previous "
                                   f"frame ({self._times[-1]:.6f} s): timestamps must increase")
        self._times.append(float(time))
        self._frames.append(frame)
        self.end += 1
        return self.end - 1

    def drop_before(self, time: float) -> None:
        """Forget the frames that left the screen before ``time`` (those after the frame on
        screen at it stay)."""
        while len(self._times) > 1 and self._times[1] <= time + TIME_EPS:
            self._times.popleft()
            self._frames.popleft()

    def index_at(self, times: Sequence[float]) -> np.ndarray:
        """
        Args:
            times: (T,) seconds.
        Returns:
            int64 ndarray (T,): absolute index of the frame on screen at each time among the
            frames kept (times before the oldest kept frame take it; after the newest, it).
        """
        return frames_on_screen(list(self._times), times) + self.start

    def time_of(self, index: int) -> float:
        """Presentation time of the kept frame ``index``."""
        return self._times[self._local(index)]

    def _local(self, index: int) -> int:
        if not self.start <= index < self.end:
            raise IndexError(f"frame {index} is not in the buffer (frames {self.start} .. "
                             f"{self.end - 1} are)")
        return index - self.start

    def __getitem__(self, index: int) -> np.ndarray:
        """The RGB frame ``index`` (a decoder frame is converted once, when first asked for)."""
        i = self._local(index)
        frame = self._frames[i]
        if not isinstance(frame, np.ndarray):
            frame = as_rgb(frame)
            self._frames[i] = frame
        return frame

    def gather(self, times: Sequence[float]) -> np.ndarray:
        """
        Args:
            times: (T,) seconds.
        Returns:
            uint8 ndarray (T, H, W, 3): the frames on screen at ``times``.
        """
        return np.stack([self[int(i)] for i in self.index_at(times)])
