"""Connect, authenticate, subscribe, read; reconnect with capped exponential backoff and jitter.

One class owns the connection life cycle (architecture rule 12); parsing happens
elsewhere. Each raw frame is handed to ``on_frame(frame, receipt_ns)`` as soon as it is
read, stamped by the injected :class:`~pipeline.clock.Clock`.

Outcomes:

- ``auth_failed`` -> :class:`~pipeline.errors.AuthError`, ``max_connections`` ->
  :class:`~pipeline.errors.MaxConnectionsError`: retrying cannot help, so both stop the
  supervisor with a clear message instead of looping (the official client only raises on
  auth_failed and returns silently on the close after max_connections, integrations.md 1.6).
- Any other failure (refused connection, abnormal close, ``auth_timeout``, a handshake
  that does not finish in time, an ``on_frame`` error) is an outage: ``on_disconnect`` is
  told, then the supervisor reconnects after ``Backoff.delay_s`` and resubscribes.
  Attempts are unlimited by default.
- A normal close (1000) is also an outage for the real provider (it follows
  ``max_connections`` or a server restart); with ``exit_on_close`` it ends the run
  instead (a replay server's ``close_at_end``).
- :meth:`FeedSupervisor.request_reconnect` (the silence watchdog, the slow-consumer
  policy) closes the current connection on purpose; that too is an outage with the
  given reason, whatever close code the socket reports.
- ``slow_consumer``, ``force_disconnect`` and ``error`` statuses are logged (at most
  once a second) and counted by the caller; the provider closes the socket after the
  first two, which then is an outage like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import orjson

from pipeline.clock import Clock
from pipeline.errors import AuthError, FeedError, MaxConnectionsError
from pipeline.events import FeedStatus
from pipeline.feed import messages as m
from pipeline.feed.parse import parse_frame
from pipeline.feed.source import FeedClosed, FrameConnection, FrameSource
from pipeline.retry import Backoff

logger = logging.getLogger(__name__)

FrameHandler = Callable[[str | bytes, int], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Disconnect:
    """One outage, as reported to ``on_disconnect``."""

    reason: str
    detected_ns: int
    attempt: int


def _statuses(frame: str | bytes) -> list[FeedStatus]:
    return [e for e in parse_frame(frame, 0) if isinstance(e, FeedStatus)]


def _raise_if_fatal(statuses: Sequence[FeedStatus], where: str) -> None:
    for st in statuses:
        if st.status == m.STATUS_AUTH_FAILED:
            raise AuthError(
                f"{where} rejected the API key (auth_failed: {st.message!r}); check MASSIVE_API_KEY"
            )
        if st.status == m.STATUS_MAX_CONNECTIONS:
            raise MaxConnectionsError(
                f"{where} refused the connection (max_connections: {st.message!r}); "
                "another streamer is using this account's connection"
            )


class FeedSupervisor:
    """Drive one feed subscription until stopped, a fatal status, or (optionally) a normal close.

    Parameters
    ----------
    source
        Opens connections.
    api_key
        Sent in the auth message; never logged.
    channels
        Subscriptions, e.g. ``["T.AAPL", "T.MSFT"]``.
    on_frame
        Awaited with every raw frame and its receipt time (ns); must not parse or do IO
        beyond enqueueing (the socket is not read while it runs).
    clock
        Receipt and detection times.
    backoff
        Reconnect policy.
    sleep
        Awaitable sleep (tests pass one that advances a fake clock).
    rng
        Jitter source.
    handshake_timeout_s
        Bound of each handshake step.
    exit_on_close
        End :meth:`run` on a normal close instead of reconnecting.
    on_disconnect
        Awaited on every outage, in stream order with ``on_frame`` (gap records, counters).
    on_connected
        Called once a connection is authenticated and the subscription sent.
    """

    def __init__(
        self,
        source: FrameSource,
        api_key: str,
        channels: Sequence[str],
        on_frame: FrameHandler,
        *,
        clock: Clock,
        backoff: Backoff | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        handshake_timeout_s: float = 10.0,
        exit_on_close: bool = False,
        on_disconnect: Callable[[Disconnect], Awaitable[None]] | None = None,
        on_connected: Callable[[], None] | None = None,
    ) -> None:
        if not channels:
            raise FeedError("nothing to subscribe to: give at least one symbol")
        self.source = source
        self._api_key = api_key
        self.channels = list(channels)
        self._on_frame = on_frame
        self.clock = clock
        self.backoff = backoff or Backoff()
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.handshake_timeout_s = handshake_timeout_s
        self.exit_on_close = exit_on_close
        self._on_disconnect = on_disconnect
        self._on_connected = on_connected
        self._conn: FrameConnection | None = None
        self._forced: str | None = None
        self._last_status_log = 0.0
        self.connected = False
        self.connects = 0
        self.disconnects = 0
        self.delays_s: list[float] = []
        self.last_error: str | None = None
        self.closed_normally = False
        self._data_seen = False

    async def run(self) -> None:
        """Connect and read until cancelled, a fatal status, or (``exit_on_close``) a normal close.

        Raises
        ------
        AuthError
            The key was rejected.
        MaxConnectionsError
            The provider refused a second connection.
        FeedError
            ``Backoff.max_attempts`` consecutive attempts failed.
        """
        attempt = 0
        while True:
            conn: FrameConnection | None = None
            self._data_seen = False
            self._forced = None
            try:
                conn = await self.source.connect()
                self._conn = conn
                self.connects += 1
                await self._handshake(conn)
                self.connected = True
                if self._on_connected is not None:
                    self._on_connected()
                await self._read(conn)
            except (AuthError, MaxConnectionsError):
                raise
            except FeedClosed as e:
                if self._forced is not None:
                    await self._outage(f"{self._forced} ({e})", attempt + 1)
                elif e.normal and self.exit_on_close:
                    self.closed_normally = True
                    return
                else:
                    await self._outage(str(e), attempt + 1)
            except FeedError as e:
                reason = str(e) if self._forced is None else f"{self._forced} ({e})"
                await self._outage(reason, attempt + 1)
            finally:
                self.connected = False
                self._conn = None
                if conn is not None:
                    with contextlib.suppress(FeedError, OSError):
                        await conn.close()
            # A connection that delivered data resets the backoff; one that failed before
            # any data (refused, dropped at once) keeps growing it: no reconnect storm.
            attempt = 1 if self._data_seen else attempt + 1
            if self.backoff.max_attempts is not None and attempt >= self.backoff.max_attempts:
                raise FeedError(
                    f"gave up on {self.source.description} after {attempt} failed attempts; "
                    f"last error: {self.last_error}"
                )
            delay = self.backoff.delay_s(attempt, self._rng)
            self.delays_s.append(delay)
            logger.warning("feed outage (%s); reconnecting in %.2f s", self.last_error, delay)
            await self._sleep(delay)

    async def request_reconnect(self, reason: str) -> bool:
        """Close the current connection on purpose; the run loop records an outage and reconnects.

        Parameters
        ----------
        reason
            Why (becomes the gap's reason).

        Returns
        -------
        bool
            False if no connection was open (nothing to do).
        """
        conn = self._conn
        if conn is None or self._forced is not None:
            return False
        self._forced = reason
        logger.warning("dropping the feed connection on purpose: %s", reason)
        with contextlib.suppress(FeedError, OSError):
            await conn.close()
        return True

    def _log_status(self, statuses: Sequence[FeedStatus]) -> None:
        for st in statuses:
            if st.status in (m.STATUS_SLOW_CONSUMER, m.STATUS_FORCE_DISCONNECT, m.STATUS_ERROR):
                now = time.monotonic()
                if now - self._last_status_log >= 1.0:
                    self._last_status_log = now
                    logger.warning("feed status %s: %s", st.status, st.message)

    async def _outage(self, reason: str, attempt: int) -> None:
        self.disconnects += 1
        self.last_error = reason
        if self._on_disconnect is not None:
            await self._on_disconnect(
                Disconnect(reason=reason, detected_ns=self.clock.now_ns(), attempt=attempt)
            )

    async def _recv(self, conn: FrameConnection, step: str) -> str | bytes:
        try:
            frame = await asyncio.wait_for(conn.recv(), self.handshake_timeout_s)
        except TimeoutError:
            raise FeedError(
                f"{self.source.description} sent nothing for {self.handshake_timeout_s} s "
                f"while {step}"
            ) from None
        await self._on_frame(frame, self.clock.now_ns())
        return frame

    async def _handshake(self, conn: FrameConnection) -> None:
        where = self.source.description
        first = _statuses(await self._recv(conn, "waiting for 'connected'"))
        _raise_if_fatal(first, where)
        if not any(s.status == m.STATUS_CONNECTED for s in first):
            got = [s.status for s in first]
            raise FeedError(f"{where} did not greet with status 'connected' (got {got})")
        await conn.send(orjson.dumps(m.auth_action(self._api_key)).decode())
        while True:
            statuses = _statuses(await self._recv(conn, "authenticating"))
            _raise_if_fatal(statuses, where)
            kinds = {s.status for s in statuses}
            if m.STATUS_AUTH_SUCCESS in kinds:
                break
            if m.STATUS_AUTH_TIMEOUT in kinds:
                raise FeedError(f"{where} timed out our authentication (auth_timeout)")
        await conn.send(orjson.dumps(m.subscribe_action(self.channels)).decode())

    async def _read(self, conn: FrameConnection) -> None:
        """Read frames until the connection fails (raises); mark the connection healthy on data."""
        where = self.source.description
        while True:
            frame = await conn.recv()
            receipt_ns = self.clock.now_ns()
            # Status frames are rare and small; data frames never contain the word "status".
            is_status = ("status" in frame) if isinstance(frame, str) else (b"status" in frame)
            await self._on_frame(frame, receipt_ns)
            if is_status:
                statuses = _statuses(frame)
                _raise_if_fatal(statuses, where)
                self._log_status(statuses)
            else:
                self._data_seen = True
