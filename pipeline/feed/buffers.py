"""The streamer's frame buffers, bounded in frames *and* bytes with O(1) accounting per frame.

A frame count alone bounds nothing: the socket accepts frames up to ``--max-frame-bytes``
(16 MiB), so a 10,000-frame queue could hold 160 GiB. Each buffer therefore keeps a
running byte total (``len`` of the frame, added on entry and taken off on exit) next to
its length, and is full when either bound is reached.

- :class:`FrameQueue` sits between the socket reader and the parser. When it is full the
  reader waits for room (:meth:`FrameQueue.wait_room`); what it does meanwhile (hang up
  or not) is the streamer's slow-consumer policy, the same for either bound. A frame
  larger than the byte bound still enters an empty queue: refusing it would stall the
  stream for good, and the socket's frame limit bounds it.
- :class:`FrameRing` keeps the latest frames already produced (the dedup guards' seeds
  for a gap that closes). It is a cache: past either bound it forgets its oldest frames.

Control items (a disconnect, the stop sentinel) take a place in the queue but no bytes.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from typing import Generic, TypeVar

Item = TypeVar("Item")
Frame = tuple[str | bytes, int]  # a raw frame and its receipt time (ns)


class FrameQueue(Generic[Item]):
    """FIFO of frames (and control items) bounded in items and in frame bytes.

    Parameters
    ----------
    max_frames
        Most items queued.
    max_bytes
        Most frame bytes queued (a single larger frame is let into an empty queue).
    """

    def __init__(self, max_frames: int, max_bytes: int) -> None:
        if max_frames < 1 or max_bytes < 1:
            raise ValueError(
                f"queue bounds must be positive, got {max_frames} frames, {max_bytes} bytes"
            )
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.bytes = 0
        self.high_water_frames = 0
        self.high_water_bytes = 0
        self._q: asyncio.Queue[tuple[Item, int]] = asyncio.Queue()
        self._room = asyncio.Event()

    def qsize(self) -> int:
        """Return the number of queued items."""
        return self._q.qsize()

    def full_for(self, nbytes: int) -> str | None:
        """Return which bound an item of ``nbytes`` would break (``frames``/``bytes``), or None."""
        n = self._q.qsize()
        if n >= self.max_frames:
            return "frames"
        if n and self.bytes + nbytes > self.max_bytes:
            return "bytes"
        return None

    def describe(self) -> str:
        """Return the fill level, for log lines and gap reasons."""
        return (
            f"{self._q.qsize()} of {self.max_frames} frames, "
            f"{self.bytes:,} of {self.max_bytes:,} bytes"
        )

    def put_nowait(self, item: Item, nbytes: int) -> None:
        """Queue ``item`` (``nbytes`` of frame) whatever the bounds; callers check first."""
        self._q.put_nowait((item, nbytes))
        self.bytes += nbytes
        n = self._q.qsize()
        if n > self.high_water_frames:
            self.high_water_frames = n
        if self.bytes > self.high_water_bytes:
            self.high_water_bytes = self.bytes

    async def wait_room(self, nbytes: int) -> None:
        """Wait until an item of ``nbytes`` fits (the parser takes items off)."""
        while self.full_for(nbytes) is not None:
            self._room.clear()
            await self._room.wait()

    async def put(self, item: Item, nbytes: int = 0) -> None:
        """Wait for room, then queue ``item``."""
        await self.wait_room(nbytes)
        self.put_nowait(item, nbytes)

    async def get(self) -> Item:
        """Wait for the oldest item and take it off."""
        item, nbytes = await self._q.get()
        self.bytes -= nbytes
        self._room.set()
        return item


class FrameRing:
    """The latest frames, at most ``max_frames`` of them and ``max_bytes`` of frame bytes.

    The newest frame is always kept, whatever its size.

    Parameters
    ----------
    max_frames
        Most frames kept.
    max_bytes
        Most frame bytes kept.
    """

    def __init__(self, max_frames: int, max_bytes: int) -> None:
        if max_frames < 1 or max_bytes < 1:
            raise ValueError(
                f"ring bounds must be positive, got {max_frames} frames, {max_bytes} bytes"
            )
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.bytes = 0
        self.evicted = 0
        self._frames: deque[Frame] = deque()

    def __len__(self) -> int:
        return len(self._frames)

    def newest_first(self) -> Iterator[Frame]:
        """Return the frames kept, newest first."""
        return reversed(self._frames)

    def append(self, frame: Frame) -> None:
        """Keep ``frame``; forget the oldest ones past either bound (amortised O(1))."""
        frames = self._frames
        frames.append(frame)
        self.bytes += len(frame[0])
        while len(frames) > 1 and (len(frames) > self.max_frames or self.bytes > self.max_bytes):
            self.bytes -= len(frames.popleft()[0])
            self.evicted += 1
