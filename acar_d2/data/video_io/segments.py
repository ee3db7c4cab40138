"""
A video written in segments that can be continued after an interruption (the resumable demo).

An mp4 cannot be appended to safely: its index (``moov``) is written when the file is closed, a
killed process leaves an unplayable file, and re-opening a finished one to add frames is not
something every encoder / muxer supports. So :class:`SegmentedVideoWriter` writes
``<root>.part000<ext>``, ``<root>.part001<ext>``, ... (each a complete video, closed at every
:meth:`~SegmentedVideoWriter.checkpoint`), and :func:`join_segments` joins them into the output
by remuxing their packets with PyAV (no re-encoding: the frames are bit-identical to the
segments'; each segment starts with a key frame and has no B-frames, so its timestamps can be
shifted to follow the previous one's and any player decodes the joined file).
"""
import os
from typing import List, Optional, Sequence

import numpy as np

from .writer import VideoWriter

__all__ = ["SegmentedVideoWriter", "join_segments", "segment_path", "count_video_frames"]


def segment_path(output: str, index: int) -> str:
    """``out.mp4`` -> ``out.part000.mp4`` (the segment ``index`` of ``output``)."""
    root, ext = os.path.splitext(output)
    return f"{root}.part{index:03d}{ext or '.mp4'}"


def count_video_frames(path: str) -> int:
    """Frames of a finished video file, by decoding it (the container's count can be missing)."""
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        return sum(1 for packet in container.demux(stream) if packet.size)


class SegmentedVideoWriter:
    """
    :class:`VideoWriter` over segments of ``output``: :meth:`write` adds a frame to the open
    segment (opened at the first frame after a checkpoint), :meth:`checkpoint` closes it.

    Args:
        output (str): the final video (its segments lie beside it).
        fps (float): frame rate.
        segments (list[str]): finished segments of an interrupted run (continued, not rewritten).
        num_frames (int): the frames those segments hold.
    """

    def __init__(self, output: str, fps: float, segments: Sequence[str] = (), num_frames: int = 0):
        self.output = output
        self.fps = fps
        self.segments: List[str] = list(segments)
        self.num_frames = int(num_frames)
        self._writer = None

    def write(self, frame: np.ndarray, time: Optional[float] = None) -> None:
        """Args: frame (ndarray): (H, W, 3) uint8 RGB; time (float or None): seconds at which it
        is shown; as :meth:`VideoWriter.write`."""
        if self._writer is None:
            path = segment_path(self.output, len(self.segments))
            if os.path.exists(path):  # left by a killed run after its last checkpoint
                os.remove(path)
            self._writer = VideoWriter(path, self.fps, b_frames=False)
        self._writer.write(frame, time)
        self.num_frames += 1

    def checkpoint(self) -> List[str]:
        """
        Close the open segment (a complete video from now on).

        Returns:
            list[str]: every finished segment, in order.
        """
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()
            if writer.num_frames:
                self.segments.append(writer.path)
        return list(self.segments)

    def close(self) -> None:
        """Close the open segment (idempotent); :func:`join_segments` makes the output."""
        self.checkpoint()


def join_segments(segments: Sequence[str], output: str, keep_timestamps: bool = False) -> int:
    """
    Join finished segments into ``output`` (written beside it, then renamed: a reader never sees
    half a file) by remuxing their packets, each segment's timestamps shifted to follow the
    previous one's last frame, or kept (``keep_timestamps``: segments written with their frames'
    source times, which already follow each other).

    Args:
        segments (list[str]): videos of the same codec, size and frame rate (one
            :class:`SegmentedVideoWriter`'s).
        output (str): the joined video.
        keep_timestamps (bool): copy the timestamps as they are.
    Returns:
        int: frames in ``output``.
    """
    import av

    if not segments:
        raise ValueError(f"join_segments({output!r}): no segment to join")
    root, ext = os.path.splitext(output)
    tmp = f"{root}.joining-{os.getpid()}{ext or '.mp4'}"
    frames = 0
    with av.open(tmp, mode="w") as out:
        out_stream, offset = None, 0
        for path in segments:
            with av.open(path) as src:
                stream = src.streams.video[0]
                if out_stream is None:
                    out_stream = out.add_stream_from_template(stream)
                duration = 0
                for packet in src.demux(stream):
                    if packet.dts is None:  # the demuxer's end-of-stream flush packet
                        continue
                    end = packet.pts + (packet.duration or 0)
                    duration = max(duration, end)
                    packet.pts += offset
                    packet.dts += offset
                    packet.stream = out_stream
                    out.mux(packet)
                    frames += 1
                # the segments share one time base (same writer settings) and have no B-frames
                # (decoding order = display order), so shifted timestamps stay increasing
                if not keep_timestamps:
                    offset += duration
    os.replace(tmp, output)
    return frames
