"""A local test double of the Polygon/Massive stocks feed: WebSocket and REST v3 trades.

This module is the server and its WebSocket protocol; the pure parts are beside it:
pacing in :mod:`pipeline.feed.replay_timeline`, bars in :mod:`pipeline.feed.replay_bars`,
REST pages in :mod:`pipeline.feed.replay_rest`.

Protocol (integrations.md 1.2; shapes in :mod:`pipeline.feed.messages`):

- on connect: ``[{"ev":"status","status":"connected","message":"Connected Successfully"}]``;
- ``{"action":"auth","params":KEY}`` -> ``auth_success`` (or ``auth_failed``, then the
  socket closes with 1008); no auth within ``auth_timeout_s`` -> ``auth_timeout`` and close;
- ``subscribe`` / ``unsubscribe`` with ``T.SYM,Q.SYM,A.SYM,AM.SYM`` (``*`` = every symbol)
  -> one ``success`` status per channel; an unknown channel kind gets an ``error`` status;
  actions before ``auth_success`` get an ``error`` status (``not authorized``);
- more than ``max_connections`` simultaneous clients: the new one gets ``max_connections``
  and is closed (the provider's default is one connection per cluster);
- data: JSON-array text frames of ``T`` events (ms ``t``, ``q``, ``c``, ``x``, ``i``, ``z``),
  ``Q`` events when quotes are given, and ``A``/``AM`` bars built from the trades (a bar
  is sent when the symbol's next trade falls in a later window, or at the end).

**Timeline.** ``speed`` paces by SIP time (1 = real time), ``rate`` by events per second
(benchmarks), neither = as fast as the client reads. With ``shared_timeline`` the replay
is a *live* session: its clock starts at the first subscription (or at :meth:`start` with
``clock_from_start``), a subscriber receives only
events due from the moment it subscribes, and events due while it is disconnected are
gone from the WebSocket, exactly like the provider's feed (this is what makes gaps real).
Without it each connection replays the whole file from its subscription on.
``max_pause_s`` caps the wait between two events (nights need not be waited out).

**REST v3 trades.** ``GET /v3/trades/{ticker}`` on the same port serves the same prints
with ns ``sip_timestamp`` and the same ids as the WebSocket: ``timestamp`` (ns or a
date) with ``.gte``/``.gt``/``.lte``/``.lt``, ``order`` (asc|desc), ``sort=timestamp``,
``limit`` (1-50000, default 1000), pagination through ``next_url`` (an opaque ``cursor``),
auth by ``Authorization: Bearer KEY`` or ``apiKey=KEY`` (else 401). With a shared
timeline only prints already due are served (REST cannot see the future). ``rest_failures``
makes the first N requests answer 429 (then 503 alternately) to exercise retries.

**Faults.** ``drop_every_s`` / ``drop_after_events`` end each connection after that long
(or that many events) since its subscription: ``drop_mode`` ``abort`` (TCP reset, the
client sees 1006), ``going_away`` (close 1001) or ``force_disconnect`` (status frame,
then close 1008). ``slow_reader_timeout_s``: a client that leaves more than
``write_buffer_bytes`` unread for that long is cut off (TCP abort), as the provider does
once its server-side buffer fills (polygon-io/issues#217). ``revoke_key_after`` answers
``auth_failed`` to every connection after that many. ``stall_after_events`` makes the
first ``stall_connections`` connections go silent (socket open, nothing sent) after that
many events: a stalled session, which only a silence watchdog notices.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from pipeline.errors import ConfigError
from pipeline.events import Quote, Trade
from pipeline.feed import messages as m
from pipeline.feed.replay_bars import Bars, WireEvent
from pipeline.feed.replay_rest import TradeIndex, json_response
from pipeline.feed.replay_timeline import Timeline

logger = logging.getLogger(__name__)

CLOSE_POLICY = 1008
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
NS_PER_S = 1_000_000_000
DropMode = Literal["abort", "going_away", "force_disconnect"]
_DROP_MODES = ("abort", "going_away", "force_disconnect")


@dataclass
class ReplayStats:
    """Counters of a replay server (for tests and the command's summary)."""

    connections: int = 0
    refused: int = 0
    authenticated: int = 0
    auth_failed: int = 0
    frames_sent: int = 0
    trades_sent: int = 0
    quotes_sent: int = 0
    bars_sent: int = 0
    completed_replays: int = 0
    drops: int = 0
    stalls: int = 0
    slow_reader_kills: int = 0
    rest_requests: int = 0
    rest_trades: int = 0
    rest_errors: int = 0
    subscriptions: list[str] = field(default_factory=lambda: list[str]())


def _frame(events: Iterable[str]) -> str:
    return "[" + ",".join(events) + "]"


def _status_frame(status: str, message: str) -> str:
    return orjson.dumps([m.status_message(status, message)]).decode()


class ReplayServer:
    """Serve ``trades`` (and optional ``quotes``) over the stocks WebSocket and REST v3 APIs.

    Parameters
    ----------
    trades
        The prints to replay; sorted here by SIP time (stable, so file order breaks ties).
    api_key
        The only key accepted by ``auth`` and REST.
    speed
        Multiple of SIP time; None = not paced by SIP time.
    rate
        Events per second (overrides ``speed``); None = not paced by count.
    shared_timeline
        One live session for every connection (see the module docs); needs a pace.
    host, port
        Bind address; port 0 picks a free port (see :attr:`port`).
    frame_events
        Most events in one frame.
    auth_timeout_s
        How long a client may wait before sending ``auth``.
    max_connections
        Simultaneous clients allowed.
    max_pause_s
        Longest single wait between two events at a finite speed (None = no cap).
    close_at_end
        Close each connection normally once its replay has finished.
    quotes
        Quotes to interleave by SIP time (sent on ``Q`` subscriptions).
    drop_every_s, drop_after_events, drop_mode
        Scripted disconnects (see the module docs).
    slow_reader_timeout_s, write_buffer_bytes
        The slow-reader kill: unread bytes above the bound for longer than the timeout.
    revoke_key_after
        Connections after this many get ``auth_failed``.
    rest_failures
        The first N REST requests fail with 429/503.
    clock_from_start
        Start the shared timeline at :meth:`start` instead of the first subscription.
    stall_after_events, stall_connections
        The first ``stall_connections`` connections go silent (open, sending nothing)
        after ``stall_after_events`` events.
    """

    def __init__(
        self,
        trades: Sequence[Trade],
        *,
        api_key: str,
        speed: float | None = None,
        rate: float | None = None,
        shared_timeline: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        frame_events: int = 100,
        auth_timeout_s: float = 10.0,
        max_connections: int = 1,
        max_pause_s: float | None = None,
        close_at_end: bool = False,
        quotes: Sequence[Quote] = (),
        drop_every_s: float | None = None,
        drop_after_events: int | None = None,
        drop_mode: DropMode = "abort",
        slow_reader_timeout_s: float | None = None,
        write_buffer_bytes: int = 1 << 20,
        revoke_key_after: int | None = None,
        rest_failures: int = 0,
        clock_from_start: bool = False,
        stall_after_events: int | None = None,
        stall_connections: int = 1,
    ) -> None:
        if speed is not None and speed <= 0:
            raise ConfigError(f"replay speed is {speed} and must be positive (or None for max)")
        if rate is not None and rate <= 0:
            raise ConfigError(f"replay rate is {rate} events/s and must be positive")
        if frame_events < 1:
            raise ConfigError(f"frame_events is {frame_events} and must be at least 1")
        if not api_key:
            raise ConfigError("the replay server needs a non-empty API key")
        if shared_timeline and speed is None and rate is None:
            raise ConfigError("a shared timeline needs a pace: give a speed or a rate")
        if drop_mode not in _DROP_MODES:
            raise ConfigError(f"drop_mode {drop_mode!r} must be one of {_DROP_MODES}")
        for name, value in (
            ("drop_every_s", drop_every_s),
            ("slow_reader_timeout_s", slow_reader_timeout_s),
        ):
            if value is not None and value <= 0:
                raise ConfigError(f"{name} is {value} and must be positive")
        ordered = sorted(trades, key=lambda t: t.sip_timestamp_ns)
        wire: list[WireEvent] = [
            WireEvent(
                t.sip_timestamp_ns,
                t.symbol,
                m.EV_TRADE,
                orjson.dumps(m.trade_message(t)).decode(),
                t.price,
                t.size,
            )
            for t in ordered
        ]
        if quotes:
            wire.extend(
                WireEvent(
                    q.sip_timestamp_ns,
                    q.symbol,
                    m.EV_QUOTE,
                    orjson.dumps(m.quote_message(q)).decode(),
                )
                for q in quotes
            )
            wire.sort(key=lambda w: w.sip_ns)
        self._trades = ordered
        self._wire = wire
        self._timeline = Timeline(
            [w.sip_ns for w in wire], speed if rate is None else None, rate, max_pause_s
        )
        self.api_key = api_key
        self.speed = speed
        self.rate = rate
        self.shared_timeline = shared_timeline
        self.host = host
        self._port = port
        self.frame_events = frame_events
        self.auth_timeout_s = auth_timeout_s
        self.max_connections = max_connections
        self.max_pause_s = max_pause_s
        self.close_at_end = close_at_end
        self.drop_every_s = drop_every_s
        self.drop_after_events = drop_after_events
        self.drop_mode: DropMode = drop_mode
        self.slow_reader_timeout_s = slow_reader_timeout_s
        self.write_buffer_bytes = write_buffer_bytes
        self.revoke_key_after = revoke_key_after
        self.rest_failures = rest_failures
        self.clock_from_start = clock_from_start
        self.stall_after_events = stall_after_events
        self.stall_connections = stall_connections
        self.stats = ReplayStats()
        # Set whenever a connection's replay has sent its last frame (tests, demos).
        self.replay_finished = asyncio.Event()
        self.timeline_finished = asyncio.Event()
        self._active = 0
        self._server: Server | None = None
        self._t0: float | None = None
        self._rest = TradeIndex(self._trades)
        self._sessions: set[_Session] = set()

    @property
    def trade_count(self) -> int:
        """Return how many prints one full replay sends (with ``T.*``)."""
        return len(self._trades)

    @property
    def duration_s(self) -> float:
        """Return how long one paced replay lasts (0 at max speed)."""
        return self._timeline.due_s(len(self._wire) - 1) if self._wire else 0.0

    @property
    def trades(self) -> Sequence[Trade]:
        """Return the prints in replay order."""
        return self._trades

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

    @property
    def rest_url(self) -> str:
        """Return ``http://host:port``, the REST base URL (after :meth:`start`)."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Bind and start accepting connections; a shared timeline starts now."""
        self._server = await serve(
            self._handle,
            self.host,
            self._port,
            compression=None,
            max_size=2**20,
            process_request=self._process_request,
            # The server-side buffer a slow reader fills before it is cut off.
            write_limit=self.write_buffer_bytes,
        )
        if self.shared_timeline and self.clock_from_start:
            self._t0 = asyncio.get_running_loop().time()

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

    # -- the shared clock ------------------------------------------------------------------------
    def elapsed_s(self) -> float:
        """Return seconds since the shared timeline started (0 before :meth:`start`)."""
        if self._t0 is None:
            return 0.0
        return asyncio.get_running_loop().time() - self._t0

    def due_count(self) -> int:
        """Return how many events of the shared timeline are due now (all without one)."""
        if not self.shared_timeline:
            return len(self._wire)
        return self._timeline.due_count(self.elapsed_s())

    def sip_now_ns(self) -> int | None:
        """Return the SIP time of the last event due on the shared timeline (None: none yet)."""
        k = self.due_count()
        return self._wire[k - 1].sip_ns if k else None

    # -- WebSocket connections -------------------------------------------------------------------
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
        session = _Session(self, ws, self.stats.connections)
        self._sessions.add(session)
        try:
            await session.run()
        except ConnectionClosed:
            pass  # the client went away; nothing to tell it
        finally:
            self._active -= 1
            self._sessions.discard(session)
            await session.stop_replay()

    def drop_all(self, mode: DropMode = "abort") -> int:
        """End every open connection now (tests); return how many."""
        n = 0
        for session in list(self._sessions):
            session.drop_now(mode)
            n += 1
        return n

    # -- REST ------------------------------------------------------------------------------------
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        parts = urlsplit(request.path)
        if not parts.path.startswith("/v3/trades/"):
            return json_response(
                http.HTTPStatus.NOT_FOUND, {"status": "NOT_FOUND", "message": "Not Found"}
            )
        self.stats.rest_requests += 1
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        auth = request.headers.get("Authorization", "")
        key = auth[7:] if auth.startswith("Bearer ") else query.pop("apiKey", "")
        if key != self.api_key:
            self.stats.rest_errors += 1
            return json_response(
                http.HTTPStatus.UNAUTHORIZED,
                {"status": "ERROR", "request_id": "replay", "error": "Unknown API Key"},
            )
        if self.rest_failures > 0:
            self.rest_failures -= 1
            self.stats.rest_errors += 1
            status = (
                http.HTTPStatus.TOO_MANY_REQUESTS
                if self.rest_failures % 2 == 0
                else http.HTTPStatus.SERVICE_UNAVAILABLE
            )
            resp = json_response(status, {"status": "ERROR", "error": status.phrase})
            resp.headers["Retry-After"] = "0"
            return resp
        ticker = parts.path[len("/v3/trades/") :]
        due_through: int | None = None
        if self.shared_timeline:
            now = self.sip_now_ns()
            due_through = -1 if now is None else now  # -1: nothing due yet
        try:
            body = self._rest.page(ticker, query, due_through, self.rest_url)
        except ValueError as e:
            self.stats.rest_errors += 1
            return json_response(
                http.HTTPStatus.BAD_REQUEST,
                {"status": "ERROR", "request_id": "replay", "error": str(e)},
            )
        self.stats.rest_trades += len(body["results"])
        return json_response(http.HTTPStatus.OK, body)


class _Session:
    """The state of one client connection."""

    def __init__(self, server: ReplayServer, ws: ServerConnection, number: int) -> None:
        self.server = server
        self.ws = ws
        self.number = number
        self.authenticated = False
        self.subs: dict[str, set[str]] = {k: set() for k in m.CHANNEL_KINDS}
        self.all_symbols: set[str] = set()  # kinds subscribed with '*'
        self.replay: asyncio.Task[None] | None = None
        self._dropped = False
        self._closing: asyncio.Future[None] | None = None  # keeps the close task referenced

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
            revoked = srv.revoke_key_after is not None and self.number > srv.revoke_key_after
            if isinstance(params, str) and params == srv.api_key and not revoked:
                self.authenticated = True
                srv.stats.authenticated += 1
                await self.ws.send(_status_frame(m.STATUS_AUTH_SUCCESS, "authenticated"))
                return True
            srv.stats.auth_failed += 1
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
            if ev not in self.subs or not sym:
                statuses.append(m.status_message(m.STATUS_ERROR, f"unsupported channel: {channel}"))
                continue
            sym = sym.upper()
            if subscribe:
                if sym == "*":
                    self.all_symbols.add(ev)
                else:
                    self.subs[ev].add(sym)
                self.server.stats.subscriptions.append(channel)
                statuses.append(m.status_message(m.STATUS_SUCCESS, f"subscribed to: {channel}"))
            else:
                if sym == "*":
                    self.all_symbols.discard(ev)
                else:
                    self.subs[ev].discard(sym)
                statuses.append(m.status_message(m.STATUS_SUCCESS, f"unsubscribed to: {channel}"))
        if statuses:
            await self.ws.send(orjson.dumps(statuses).decode())
        if subscribe and self.replay is None:
            self.replay = asyncio.create_task(self._replay(), name="replay")

    def _wanted(self, kind: str, symbol: str) -> bool:
        return kind in self.all_symbols or symbol in self.subs[kind]

    def drop_now(self, mode: DropMode) -> None:
        """End this connection the way ``mode`` says (scripted fault)."""
        if self._dropped:
            return
        self._dropped = True
        self.server.stats.drops += 1
        if mode == "abort":
            self.ws.transport.abort()
        elif mode == "going_away":
            self._closing = asyncio.ensure_future(self.ws.close(CLOSE_GOING_AWAY, "server restart"))
        else:

            async def force() -> None:
                with contextlib.suppress(ConnectionClosed):
                    await self.ws.send(
                        _status_frame(m.STATUS_FORCE_DISCONNECT, "forced disconnect by the server")
                    )
                    await self.ws.close(CLOSE_POLICY, "force_disconnect")

            self._closing = asyncio.ensure_future(force())

    async def _send(self, text: str) -> None:
        timeout = self.server.slow_reader_timeout_s
        if timeout is None:
            await self.ws.send(text)
            return
        try:
            await asyncio.wait_for(self.ws.send(text), timeout)
        except TimeoutError:
            # The client left more than the server-side buffer unread for too long.
            self.server.stats.slow_reader_kills += 1
            self._dropped = True
            self.ws.transport.abort()
            raise ConnectionClosed(None, None) from None

    async def _replay(self) -> None:
        srv = self.server
        wire = srv._wire
        timeline = srv._timeline
        n = len(wire)
        loop = asyncio.get_running_loop()
        if srv.shared_timeline:
            if srv._t0 is None:  # the session opens with its first subscriber
                srv._t0 = loop.time()
                k = 0
            else:
                k = timeline.due_before(loop.time() - srv._t0)  # what was due before is gone
            t0 = srv._t0
        else:
            t0 = loop.time()
            k = 0
        subscribed_at = loop.time()
        sent_events = 0
        wants_bars = [
            kind
            for kind in (m.EV_AGG_SECOND, m.EV_AGG_MINUTE)
            if kind in self.all_symbols or self.subs[kind]
        ]
        bars = Bars()
        try:
            while k < n:
                now = loop.time()
                if srv.drop_every_s is not None and now - subscribed_at >= srv.drop_every_s:
                    self.drop_now(srv.drop_mode)
                    return
                due = timeline.due_count(now - t0)
                if k >= due:
                    wait = t0 + timeline.due_s(k) - now
                    if srv.drop_every_s is not None:
                        wait = min(wait, subscribed_at + srv.drop_every_s - now)
                    await asyncio.sleep(max(wait, 0.0))
                    continue
                batch: list[str] = []
                trades = quotes = 0
                stop = min(due, k + srv.frame_events)
                if srv.drop_after_events is not None:
                    stop = min(stop, k + max(1, srv.drop_after_events - sent_events))
                if srv.stall_after_events is not None and self.number <= srv.stall_connections:
                    if sent_events >= srv.stall_after_events:
                        srv.stats.stalls += 1
                        await asyncio.Event().wait()  # silent until the client hangs up
                    stop = min(stop, k + max(1, srv.stall_after_events - sent_events))
                while k < stop:
                    w = wire[k]
                    k += 1
                    if wants_bars and w.kind == m.EV_TRADE:
                        counted = False
                        for kind in wants_bars:
                            if self._wanted(kind, w.symbol):
                                # Finish the previous bar before this trade counts in the day.
                                bar = bars.add(kind, w)
                                if bar is not None:
                                    batch.append(bar)
                                counted = True
                        if counted:
                            bars.day(w)
                    if self._wanted(w.kind, w.symbol):
                        batch.append(w.text)
                        if w.kind == m.EV_TRADE:
                            trades += 1
                        else:
                            quotes += 1
                if batch:
                    await self._send(_frame(batch))
                    srv.stats.frames_sent += 1
                    srv.stats.trades_sent += trades
                    srv.stats.quotes_sent += quotes
                    srv.stats.bars_sent += len(batch) - trades - quotes
                    sent_events += trades + quotes
                    if srv.drop_after_events is not None and sent_events >= srv.drop_after_events:
                        self.drop_now(srv.drop_mode)
                        return
                elif not timeline.paced:
                    continue
                else:
                    # Everything due was filtered out; yield so actions are still served.
                    await asyncio.sleep(0)
            tail = bars.flush() if wants_bars else []
            if tail:
                await self._send(_frame(tail))
                srv.stats.bars_sent += len(tail)
            srv.stats.completed_replays += 1
            srv.replay_finished.set()
            if srv.shared_timeline:
                srv.timeline_finished.set()
            if srv.close_at_end:
                await self.ws.close(CLOSE_NORMAL, "replay finished")
        except ConnectionClosed:
            return

    async def stop_replay(self) -> None:
        if self.replay is not None and not self.replay.done():
            self.replay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.replay
