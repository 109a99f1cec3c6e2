"""Where frames come from: the :class:`FrameSource` port and its WebSocket adapter.

A source opens :class:`FrameConnection` objects; the supervisor drives the protocol over
them (auth, subscribe) and reads raw frames. Keeping the socket behind this port lets
tests and recordings replay through the same supervisor and streamer (architecture
rule 11) without monkeypatching.
"""

from __future__ import annotations

from typing import Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidHandshake, InvalidURI

from pipeline.errors import FeedError


class FeedClosed(FeedError):
    """The connection ended; ``normal`` is True for a clean close (code 1000/1001)."""

    def __init__(
        self, message: str, *, normal: bool, code: int | None = None, reason: str = ""
    ) -> None:
        super().__init__(message)
        self.normal = normal
        self.code = code
        self.reason = reason


class FrameConnection(Protocol):
    """One open connection to a feed."""

    async def send(self, text: str) -> None:
        """Send one client message (auth, subscribe)."""
        ...

    async def recv(self) -> str | bytes:
        """Return the next frame; raise :class:`FeedClosed` when the connection ends."""
        ...

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        ...


class FrameSource(Protocol):
    """Opens connections to one feed endpoint."""

    @property
    def description(self) -> str:
        """Return where frames come from (URL without secrets), for messages."""
        ...

    async def connect(self) -> FrameConnection:
        """Open a connection; raise :class:`~pipeline.errors.FeedError` if that fails."""
        ...


class WebSocketConnection:
    """A :class:`FrameConnection` over a ``websockets`` client connection."""

    def __init__(self, ws: ClientConnection, url: str) -> None:
        self._ws = ws
        self._url = url

    async def send(self, text: str) -> None:
        """Send a text message."""
        try:
            await self._ws.send(text)
        except ConnectionClosed as e:
            raise _closed(e, self._url) from e

    async def recv(self) -> str | bytes:
        """Return the next frame as received (text frames as ``str``)."""
        try:
            # Bytes, not str: the parser reads UTF-8 bytes directly, so decoding a text
            # frame here would be wasted work on the hot path.
            return await self._ws.recv(decode=False)
        except ConnectionClosed as e:
            raise _closed(e, self._url) from e

    async def close(self) -> None:
        """Close the socket."""
        await self._ws.close()


def _closed(e: ConnectionClosed, url: str) -> FeedClosed:
    rcvd = e.rcvd
    code = rcvd.code if rcvd is not None else None
    reason = rcvd.reason if rcvd is not None else ""
    normal = isinstance(e, ConnectionClosedOK)
    return FeedClosed(
        f"connection to {url} closed (code {code}, reason {reason!r})",
        normal=normal,
        code=code,
        reason=reason,
    )


class WebSocketSource:
    """Connect to a Polygon/Massive (or replay-server) WebSocket URL.

    Parameters
    ----------
    url
        ``wss://socket.massive.com/stocks`` or a replay server's ``ws://127.0.0.1:PORT``.
    open_timeout_s
        Bound of the TCP + TLS + HTTP upgrade.
    max_frame_bytes
        Largest frame accepted; a larger one closes the connection (code 1009).
    ping_interval_s
        Keepalive ping interval (None disables); a missed pong closes the connection.
    """

    def __init__(
        self,
        url: str,
        *,
        open_timeout_s: float = 10.0,
        max_frame_bytes: int = 16 * 2**20,
        ping_interval_s: float | None = 20.0,
    ) -> None:
        self.url = url
        self.open_timeout_s = open_timeout_s
        self.max_frame_bytes = max_frame_bytes
        self.ping_interval_s = ping_interval_s

    @property
    def description(self) -> str:
        """Return the URL (keys never appear in it: auth is a message)."""
        return self.url

    async def connect(self) -> FrameConnection:
        """Open a connection.

        Returns
        -------
        FrameConnection
            The open connection.

        Raises
        ------
        FeedError
            If the URL is invalid or the connection cannot be opened in time.
        """
        try:
            ws = await connect(
                self.url,
                open_timeout=self.open_timeout_s,
                max_size=self.max_frame_bytes,
                ping_interval=self.ping_interval_s,
                compression=None,
                # Frames are read into our own bounded queue at once; a deep library
                # buffer would only hide a slow parser.
                max_queue=64,
            )
        except InvalidURI as e:
            raise FeedError(f"feed URL {self.url!r} is invalid: {e}") from e
        except (OSError, InvalidHandshake, TimeoutError) as e:
            raise FeedError(f"cannot connect to {self.url}: {e}") from e
        return WebSocketConnection(ws, self.url)


class _RecordedConnection:
    def __init__(
        self, frames: list[str | bytes], end_normal: bool, sent: list[str], name: str
    ) -> None:
        self._frames = frames
        self._end_normal = end_normal
        self._sent = sent
        self._name = name
        self._pos = 0

    async def send(self, text: str) -> None:
        self._sent.append(text)

    async def recv(self) -> str | bytes:
        if self._pos >= len(self._frames):
            code = 1000 if self._end_normal else 1006
            raise FeedClosed(
                f"recording {self._name} ended (code {code})", normal=self._end_normal, code=code
            )
        frame = self._frames[self._pos]
        self._pos += 1
        return frame

    async def close(self) -> None:
        self._pos = len(self._frames)


class RecordedSource:
    """Replay recorded frames as a :class:`FrameSource` (tests, offline demos).

    Each :meth:`connect` plays the next recorded connection: its frames in order, then a
    close (normal or abnormal, per ``ends``). Client messages are recorded in ``sent``
    and otherwise ignored, so a recording must contain the handshake the server sent.

    Parameters
    ----------
    connections
        Frames of each successive connection.
    ends
        ``"normal"`` or ``"error"`` per connection (default: all normal).
    name
        Shown in messages.
    """

    def __init__(
        self,
        connections: list[list[str | bytes]],
        *,
        ends: list[str] | None = None,
        name: str = "recording",
    ) -> None:
        self._connections = connections
        self._ends = ends or ["normal"] * len(connections)
        if len(self._ends) != len(connections) or not set(self._ends) <= {"normal", "error"}:
            raise FeedError(f"ends {self._ends!r} must give 'normal' or 'error' per connection")
        self.name = name
        self.sent: list[str] = []
        self.opened = 0

    @classmethod
    def from_jsonl(cls, path: str, *, end: str = "normal") -> RecordedSource:
        """Build a one-connection source from a file with one frame per line."""
        with open(path, "rb") as f:
            frames: list[str | bytes] = [line.rstrip(b"\n") for line in f if line.strip()]
        return cls([frames], ends=[end], name=path)

    @property
    def description(self) -> str:
        """Return the recording's name."""
        return self.name

    async def connect(self) -> FrameConnection:
        """Open the next recorded connection; FeedError when none is left."""
        if self.opened >= len(self._connections):
            raise FeedError(f"{self.name}: no more recorded connections (played {self.opened})")
        k = self.opened
        self.opened += 1
        return _RecordedConnection(
            list(self._connections[k]), self._ends[k] == "normal", self.sent, self.name
        )
