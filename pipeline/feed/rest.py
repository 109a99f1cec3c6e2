"""The REST v3 trades endpoint, for gap backfill and watchdog probes (integrations.md 1.7).

``GET {base}/v3/trades/{ticker}?timestamp.gte=NS&timestamp.lte=NS&order=asc&sort=timestamp
&limit=50000`` with ``Authorization: Bearer KEY``; rows carry ns timestamps; the next page
is ``next_url`` (an opaque cursor) until it is absent.

- The key travels only in the ``Authorization`` header and never appears in a URL, a log
  line or an error message. ``next_url`` is followed by its path and query on *our*
  configured base URL (as the official client does), so a key is never sent to another
  host, and an ``apiKey`` parameter in it is dropped.
- 429 and 5xx answers and transport errors are retried a bounded number of times with
  capped exponential backoff and jitter (``Retry-After`` honoured up to the cap); other
  4xx answers fail at once. Exhaustion raises :class:`BackfillError` naming the ticker,
  the window and the last answer, and the caller records the gap as not repaired.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import httpx
import orjson

from pipeline.errors import FeedError
from pipeline.events import Reject
from pipeline.feed.parse import Fields, rest_trade_fields
from pipeline.retry import Backoff

logger = logging.getLogger(__name__)

MAX_LIMIT = 50_000
STAGE = "rest"
_RETRY_STATUS = frozenset({413, 429, 499, 500, 502, 503, 504})


class BackfillError(FeedError):
    """The REST backfill of a window could not be completed."""


@dataclass
class RestStats:
    """Counters of one client (summary and metrics)."""

    requests: int = 0
    retries: int = 0
    pages: int = 0
    rows: int = 0
    rejects: int = 0


@dataclass(frozen=True, slots=True)
class RestPage:
    """One page of trades: valid rows as trade fields, bad rows as rejects."""

    trades: list[Fields]
    rejects: list[Reject]


Sleep = Callable[[float], Awaitable[None]]


class RestTrades:
    """Read trades of one ticker and SIP window from REST v3, page by page.

    Parameters
    ----------
    base_url
        ``https://api.massive.com`` (or a replay server's ``http://127.0.0.1:PORT``).
    api_key
        Sent as a Bearer token; never logged.
    limit
        Rows per page (1-50000).
    max_attempts
        Tries per request before giving up (first try included).
    backoff_initial_s, backoff_max_s
        Capped exponential backoff between tries (equal jitter).
    timeout_s
        Connect/read timeout of one request.
    sleep, rng
        Injected for tests.
    clock_ns
        Receipt time of each page.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        limit: int = MAX_LIMIT,
        max_attempts: int = 5,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 5.0,
        timeout_s: float = 30.0,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if not 1 <= limit <= MAX_LIMIT:
            raise FeedError(f"REST limit is {limit} and must be between 1 and {MAX_LIMIT}")
        if not api_key:
            raise FeedError("the REST backfill needs an API key (MASSIVE_API_KEY)")
        if max_attempts < 1:
            raise FeedError(f"max_attempts is {max_attempts} and must be at least 1")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.limit = limit
        self.max_attempts = max_attempts
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._backoff = Backoff(initial_s=backoff_initial_s, max_s=backoff_max_s)
        self._clock_ns = clock_ns
        self.stats = RestStats()
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}", "Accept-Encoding": "gzip"},
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"RestTrades({self.base_url!r}, api_key=***)"

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()

    async def __aenter__(self) -> RestTrades:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _delay_s(self, attempt: int, retry_after: str | None) -> float:
        if retry_after is not None:
            try:
                return min(self.backoff_max_s, max(0.0, float(retry_after)))
            except ValueError:
                pass  # an HTTP date: fall back to our own backoff
        return self._backoff.delay_s(attempt, self._rng)

    async def _get_json(self, path_and_query: str, what: str) -> dict[str, object]:
        last = ""
        for attempt in range(1, self.max_attempts + 1):
            self.stats.requests += 1
            retry_after: str | None = None
            try:
                resp = await self._client.get(path_and_query)
            except httpx.TransportError as e:
                last = f"{type(e).__name__}: {e}"
            else:
                if resp.status_code == 200:
                    try:
                        doc = orjson.loads(resp.content)
                    except orjson.JSONDecodeError as e:
                        raise BackfillError(f"{what}: the answer is not JSON ({e})") from e
                    if not isinstance(doc, dict):
                        raise BackfillError(f"{what}: the answer is a JSON {type(doc).__name__}")
                    return doc
                last = f"HTTP {resp.status_code}: {resp.text[:200]}"
                if resp.status_code not in _RETRY_STATUS:
                    raise BackfillError(f"{what}: {last}")
                retry_after = resp.headers.get("Retry-After")
            if attempt < self.max_attempts:
                self.stats.retries += 1
                delay = self._delay_s(attempt, retry_after)
                logger.warning("%s failed (%s); retry %d in %.2f s", what, last, attempt, delay)
                await self._sleep(delay)
        raise BackfillError(f"{what}: gave up after {self.max_attempts} attempts; last: {last}")

    def _next_path(self, next_url: str) -> str:
        parts = urlsplit(next_url)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "apiKey"]
        return parts.path + ("?" + urlencode(query) if query else "")

    async def pages(self, symbol: str, gte_ns: int, lte_ns: int | None) -> AsyncIterator[RestPage]:
        """Yield the trades of ``symbol`` with ``gte_ns <= sip_timestamp <= lte_ns``, ascending.

        Parameters
        ----------
        symbol
            Ticker.
        gte_ns, lte_ns
            Inclusive SIP window (UTC epoch ns); ``lte_ns`` None = up to the latest trade.

        Yields
        ------
        RestPage
            One page at a time (``next_url`` followed until absent).

        Raises
        ------
        BackfillError
            If a request fails after the retries, or an answer is malformed.
        """
        what = f"REST trades {symbol} [{gte_ns}, {'latest' if lte_ns is None else lte_ns}]"
        params: dict[str, str | int] = {"timestamp.gte": gte_ns}
        if lte_ns is not None:
            params["timestamp.lte"] = lte_ns
        params.update({"order": "asc", "sort": "timestamp", "limit": self.limit})
        path: str | None = f"/v3/trades/{quote(symbol, safe='')}?" + urlencode(params)
        while path is not None:
            doc = await self._get_json(path, what)
            receipt_ns = self._clock_ns()
            rows = doc.get("results") or []
            if not isinstance(rows, list):
                raise BackfillError(f"{what}: 'results' is a JSON {type(rows).__name__}")
            trades: list[Fields] = []
            rejects: list[Reject] = []
            for row in rows:
                got = rest_trade_fields(row, symbol, receipt_ns)
                if isinstance(got, str):
                    rejects.append(Reject(STAGE, got, orjson.dumps(row), receipt_ns))
                else:
                    trades.append(got)
            self.stats.pages += 1
            self.stats.rows += len(rows)
            self.stats.rejects += len(rejects)
            yield RestPage(trades, rejects)
            next_url = doc.get("next_url")
            path = self._next_path(next_url) if isinstance(next_url, str) and next_url else None

    async def probe(self, symbol: str, gt_ns: int) -> int | None:
        """Return the SIP time of the first trade of ``symbol`` after ``gt_ns``, None if none yet.

        Parameters
        ----------
        symbol
            Ticker.
        gt_ns
            Exclusive lower bound (UTC epoch ns).

        Returns
        -------
        int | None
            A SIP time, or None.

        Raises
        ------
        BackfillError
            If the request fails after the retries.
        """
        path = f"/v3/trades/{quote(symbol, safe='')}?" + urlencode(
            {"timestamp.gt": gt_ns, "order": "asc", "sort": "timestamp", "limit": 1}
        )
        doc = await self._get_json(path, f"REST probe {symbol} after {gt_ns}")
        rows = doc.get("results") or []
        if isinstance(rows, list) and rows and isinstance(rows[0], dict):
            sip = rows[0].get("sip_timestamp")
            if isinstance(sip, int) and not isinstance(sip, bool):
                return sip
        return None
