"""A local WebSocket server speaking the Polygon/Massive stocks protocol, replaying a trades file.

Protocol (integrations.md 1.2; shapes in :mod:`pipeline.feed.messages`):

- on connect: ``[{"ev":"status","status":"connected","message":"Connected Successfully"}]``;
- ``{"action":"auth","params":KEY}`` -> ``auth_success`` (or ``auth_failed``, then the
  socket closes with 1008); no auth within ``auth_timeout_s`` -> ``auth_timeout`` and close;
- ``subscribe`` / ``unsubscribe`` with ``T.SYM,T.*`` -> one ``success`` status per channel;
  actions before ``auth_success`` get an ``error`` status (``not authorized``);
- more than ``max_connections`` simultaneous clients: the new one gets ``max_connections``
  and is closed (the provider's default is one connection per cluster);
- data: JSON-array text frames of ``T`` events (ms ``t``, ``q``, ``c``, ``x``, ``i``, ``z``).

Replay: each connection replays the whole file from its first subscription, in SIP time
order, filtered by its current subscriptions. ``speed`` is a multiple of SIP time (1 =
real time, 100 = a 6.5-hour session in 4 minutes); ``None`` sends as fast as the client
reads (the socket's back-pressure paces it). Events due at the same moment share a frame
of at most ``frame_events`` events. ``max_pause_s`` caps a single wait (the night between
two sessions need not be waited out). With ``close_at_end`` the server closes the socket
normally (1000, "replay finished") after the last frame, so a demo can stop; the real
provider never does that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from pipeline.errors import ConfigError
from pipeline.events import Trade
from pipeline.feed import messages as m

logger = logging.getLogger(__name__)

CLOSE_POLICY = 1008
CLOSE_NORMAL = 1000


@dataclass
class ReplayStats:
    """Counters of a replay server (for tests and the command's summary)."""

    connections: int = 0
    refused: int = 0
    authenticated: int = 0
    frames_sent: int = 0
    trades_sent: int = 0
    completed_replays: int = 0
    subscriptions: list[str] = field(default_factory=lambda: list[str]())


@dataclass(frozen=True, slots=True)
class _WireTrade:
    sip_ns: int
    symbol: str
    text: str  # one event's JSON, pre-serialised once for every connection


def _frame(events: Iterable[str]) -> str:
    return "[" + ",".join(events) + "]"


def _status_frame(status: str, message: str) -> str:
    return orjson.dumps([m.status_message(status, message)]).decode()


class ReplayServer:
    """Serve ``trades`` over the stocks WebSocket protocol.

    Parameters
    ----------
    trades
        The prints to replay; sorted here by SIP time (stable, so file order breaks ties).
    api_key
        The only key accepted by ``auth``.
    speed
        Multiple of SIP time; None = as fast as the client reads.
    host, port
        Bind address; port 0 picks a free port (see :attr:`port`).
    frame_events
        Most events in one frame.
    auth_timeout_s
        How long a client may wait before sending ``auth``.
    max_connections
        Simultaneous clients allowed.
    max_pause_s
        Longest single wait between two frames at a finite speed (None = no cap).
    close_at_end
        Close each connection normally once its replay has finished.
    """

    def __init__(
        self,
        trades: Sequence[Trade],
        *,
        api_key: str,
        speed: float | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        frame_events: int = 100,
        auth_timeout_s: float = 10.0,
        max_connections: int = 1,
        max_pause_s: float | None = None,
        close_at_end: bool = False,
    ) -> None:
        if speed is not None and speed <= 0:
            raise ConfigError(f"replay speed is {speed} and must be positive (or None for max)")
        if frame_events < 1:
            raise ConfigError(f"frame_events is {frame_events} and must be at least 1")
        if not api_key:
            raise ConfigError("the replay server needs a non-empty API key")
        ordered = sorted(trades, key=lambda t: t.sip_timestamp_ns)
        self._wire = [
            _WireTrade(t.sip_timestamp_ns, t.symbol, orjson.dumps(m.trade_message(t)).decode())
            for t in ordered
        ]
        self.api_key = api_key
        self.speed = speed
        self.host = host
        self._port = port
        self.frame_events = frame_events
        self.auth_timeout_s = auth_timeout_s
        self.max_connections = max_connections
        self.max_pause_s = max_pause_s
        self.close_at_end = close_at_end
        self.stats = ReplayStats()
        # Set whenever a connection's replay has sent its last frame (tests, demos).
        self.replay_finished = asyncio.Event()
        self._active = 0
        self._server: Server | None = None

    @property
    def trade_count(self) -> int:
        """Return how many prints one full replay sends (with ``T.*``)."""
        return len(self._wire)

    @property
    def port(self) -> int:
        """Return the bound port (after :meth:`start`)."""
        if self._server is None:
            return self._port
        sock = next(iter(self._server.sockets))
        return int(sock.getsockname()[1])

    @property
    def url(self) -> str:
        """Return ``ws://host:port`` (after :meth:`start`)."""
        return f"ws://{self.host}:{self.port}"

    async def start(self) -> None:
        """Bind and start accepting connections."""
        # max_size None: clients send small actions; compression off like a market-data feed.
        self._server = await serve(
            self._handle, self.host, self._port, compression=None, max_size=2**20
        )

    async def close(self) -> None:
        """Stop accepting and close every connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def serve_forever(self) -> None:
        """Start (if needed) and serve until cancelled."""
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    async def __aenter__(self) -> ReplayServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- one connection --------------------------------------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        self.stats.connections += 1
        if self._active >= self.max_connections:
            self.stats.refused += 1
            with contextlib.suppress(ConnectionClosed):
                await ws.send(
                    _status_frame(
                        m.STATUS_MAX_CONNECTIONS,
                        "Maximum number of websocket connections exceeded. You have reached the "
                        "connection limit for your account.",
                    )
                )
                await ws.close(CLOSE_POLICY, "max_connections")
            return
        self._active += 1
        session = _Session(self, ws)
        try:
            await session.run()
        except ConnectionClosed:
            pass  # the client went away; nothing to tell it
        finally:
            self._active -= 1
            await session.stop_replay()


class _Session:
    """The state of one client connection."""

    def __init__(self, server: ReplayServer, ws: ServerConnection) -> None:
        self.server = server
        self.ws = ws
        self.authenticated = False
        self.all_symbols = False
        self.symbols: set[str] = set()
        self.replay: asyncio.Task[None] | None = None

    async def run(self) -> None:
        srv = self.server
        await self.ws.send(_status_frame(m.STATUS_CONNECTED, "Connected Successfully"))
        deadline = time.monotonic() + srv.auth_timeout_s
        while True:
            timeout = deadline - time.monotonic() if not self.authenticated else None
            if timeout is not None and timeout <= 0:
                await self._auth_timeout()
                return
            try:
                raw = await asyncio.wait_for(self.ws.recv(), timeout)
            except TimeoutError:
                await self._auth_timeout()
                return
            if not await self._on_action(raw):
                return

    async def _auth_timeout(self) -> None:
        await self.ws.send(
            _status_frame(m.STATUS_AUTH_TIMEOUT, "no authentication received in time")
        )
        await self.ws.close(CLOSE_POLICY, "auth_timeout")

    async def _on_action(self, raw: str | bytes) -> bool:
        """Handle one client message; return False once the connection is finished."""
        srv = self.server
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            await self.ws.send(_status_frame(m.STATUS_ERROR, "invalid json"))
            return True
        action = msg.get("action") if isinstance(msg, dict) else None
        params = msg.get("params") if isinstance(msg, dict) else None
        if action == m.ACTION_AUTH:
            if isinstance(params, str) and params == srv.api_key:
                self.authenticated = True
                srv.stats.authenticated += 1
                await self.ws.send(_status_frame(m.STATUS_AUTH_SUCCESS, "authenticated"))
                return True
            await self.ws.send(_status_frame(m.STATUS_AUTH_FAILED, "authentication failed"))
            await self.ws.close(CLOSE_POLICY, "auth_failed")
            return False
        if action in (m.ACTION_SUBSCRIBE, m.ACTION_UNSUBSCRIBE):
            if not self.authenticated:
                await self.ws.send(_status_frame(m.STATUS_ERROR, "not authorized"))
                return True
            if not isinstance(params, str):
                await self.ws.send(_status_frame(m.STATUS_ERROR, "params must be a string"))
                return True
            await self._subscription(action == m.ACTION_SUBSCRIBE, params)
            return True
        await self.ws.send(_status_frame(m.STATUS_ERROR, f"unknown action: {action!r}"))
        return True

    async def _subscription(self, subscribe: bool, params: str) -> None:
        statuses: list[m.StatusMessage] = []
        for channel in (c.strip() for c in params.split(",")):
            if not channel:
                continue
            ev, _, sym = channel.partition(".")
            if ev != m.CHANNEL_TRADES or not sym:
                statuses.append(m.status_message(m.STATUS_ERROR, f"unsupported channel: {channel}"))
                continue
            if subscribe:
                if sym == "*":
                    self.all_symbols = True
                else:
                    self.symbols.add(sym.upper())
                self.server.stats.subscriptions.append(channel)
                statuses.append(m.status_message(m.STATUS_SUCCESS, f"subscribed to: {channel}"))
            else:
                if sym == "*":
                    self.all_symbols = False
                else:
                    self.symbols.discard(sym.upper())
                statuses.append(m.status_message(m.STATUS_SUCCESS, f"unsubscribed to: {channel}"))
        if statuses:
            await self.ws.send(orjson.dumps(statuses).decode())
        if subscribe and self.replay is None:
            self.replay = asyncio.create_task(self._replay(), name="replay")

    def _wanted(self, symbol: str) -> bool:
        return self.all_symbols or symbol in self.symbols

    async def _replay(self) -> None:
        srv = self.server
        wire = srv._wire
        speed = srv.speed
        n = len(wire)
        k = 0
        loop = asyncio.get_running_loop()
        wall0 = loop.time()
        sip0 = wire[0].sip_ns if wire else 0
        try:
            while k < n:
                if speed is not None:
                    due = wall0 + (wire[k].sip_ns - sip0) / 1e9 / speed
                    wait = due - loop.time()
                    if srv.max_pause_s is not None and wait > srv.max_pause_s:
                        # Shift the time origin so the replay resumes after max_pause_s.
                        wall0 -= wait - srv.max_pause_s
                        wait = srv.max_pause_s
                    if wait > 0:
                        await asyncio.sleep(wait)
                    now_sip = sip0 + (loop.time() - wall0) * 1e9 * speed
                else:
                    now_sip = float("inf")
                batch: list[str] = []
                while k < n and len(batch) < srv.frame_events and wire[k].sip_ns <= now_sip:
                    w = wire[k]
                    if self._wanted(w.symbol):
                        batch.append(w.text)
                    k += 1
                if not batch:
                    if speed is None:
                        continue
                    # Everything due was filtered out; yield so actions are still served.
                    await asyncio.sleep(0)
                    continue
                await self.ws.send(_frame(batch))
                srv.stats.frames_sent += 1
                srv.stats.trades_sent += len(batch)
            srv.stats.completed_replays += 1
            srv.replay_finished.set()
            if srv.close_at_end:
                await self.ws.close(CLOSE_NORMAL, "replay finished")
        except ConnectionClosed:
            return

    async def stop_replay(self) -> None:
        if self.replay is not None and not self.replay.done():
            self.replay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.replay
