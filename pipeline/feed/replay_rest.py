"""The replay server's REST v3 trades endpoint: pages, cursors and time bounds, pure.

``GET /v3/trades/{ticker}`` serves the replay's prints with ns ``sip_timestamp`` and the
same ids as the WebSocket: ``timestamp`` (ns or a date) with ``.gte``/``.gt``/``.lte``/
``.lt``, ``order`` (asc|desc), ``sort=timestamp``, ``limit`` (1-50000, default 1000) and
pagination through ``next_url`` (an opaque ``cursor``). Authentication, injected failures
and statistics stay with :class:`~pipeline.feed.replay_server.ReplayServer`.
"""

from __future__ import annotations

import base64
import bisect
import http
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

import orjson
from websockets.datastructures import Headers
from websockets.http11 import Response

from pipeline.events import Trade

REST_MAX_LIMIT = 50_000
REST_DEFAULT_LIMIT = 1_000
NS_PER_S = 1_000_000_000


def rest_trade_row(t: Trade) -> dict[str, Any]:
    """Return the REST v3 ``results[]`` row of a trade (ns timestamps, as the provider sends).

    Parameters
    ----------
    t
        The print.

    Returns
    -------
    dict
        ``conditions, exchange, id, price, sequence_number, sip_timestamp, size, tape`` and
        ``trf_id``/``trf_timestamp`` on off-exchange prints.
    """
    row: dict[str, Any] = {
        "conditions": list(t.conditions),
        "exchange": t.exchange,
        "id": t.trade_id,
        "price": t.price,
        "sip_timestamp": t.sip_timestamp_ns,
        "size": float(t.size),  # a double on REST (fractional shares)
    }
    if t.sequence_number is not None:
        row["sequence_number"] = t.sequence_number
    if t.tape is not None:
        row["tape"] = t.tape
    if t.trf_id is not None:
        row["trf_id"] = t.trf_id
    if t.trf_timestamp_ns is not None:
        row["trf_timestamp"] = t.trf_timestamp_ns
    return row


class TradeIndex:
    """Each symbol's prints in SIP order, paged as REST v3 ``/v3/trades/{ticker}`` pages them.

    Parameters
    ----------
    trades
        Every print of the replay, in SIP order.
    """

    def __init__(self, trades: Sequence[Trade]) -> None:
        self._trades = trades
        self._index: dict[str, tuple[list[int], list[Trade]]] | None = None

    def _symbols(self) -> dict[str, tuple[list[int], list[Trade]]]:
        # Built on the first request: most replays are never asked.
        if self._index is None:
            index: dict[str, tuple[list[int], list[Trade]]] = {}
            for t in self._trades:
                sips, rows = index.setdefault(t.symbol, ([], []))
                sips.append(t.sip_timestamp_ns)
                rows.append(t)
            self._index = index
        return self._index

    def page(
        self, ticker: str, query: dict[str, str], due_through_ns: int | None, rest_url: str
    ) -> dict[str, Any]:
        """Answer one request: a page of ``ticker``'s prints and, if more follow, ``next_url``.

        Parameters
        ----------
        ticker
            The symbol in the path.
        query
            The query string's parameters (``cursor`` or ``timestamp*``, ``limit``,
            ``order``, ``sort``).
        due_through_ns
            On a shared timeline, the SIP time of the latest print due (REST cannot see
            the future); -1 when nothing is due yet; None when every print may be served.
        rest_url
            The server's base URL, for ``next_url``.

        Returns
        -------
        dict
            The REST v3 body (``results``, ``status``, ``request_id``, maybe ``next_url``).

        Raises
        ------
        ValueError
            On a bad cursor, limit, order, sort or timestamp (the server answers 400).
        """
        cursor = query.get("cursor")
        if cursor:
            try:
                state = orjson.loads(base64.urlsafe_b64decode(cursor.encode() + b"=="))
                lo, hi, limit, order, pos = (
                    int(state["lo"]),
                    int(state["hi"]),
                    int(state["limit"]),
                    str(state["order"]),
                    int(state["pos"]),
                )
            except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as e:
                raise ValueError(f"invalid cursor: {e}") from None
        else:
            lo, hi = time_bounds(query)
            limit = int(query.get("limit", REST_DEFAULT_LIMIT))
            if not 1 <= limit <= REST_MAX_LIMIT:
                raise ValueError(f"limit {limit} must be between 1 and {REST_MAX_LIMIT}")
            order = query.get("order", "asc")
            if order not in ("asc", "desc"):
                raise ValueError(f"order {order!r} must be asc or desc")
            if query.get("sort", "timestamp") != "timestamp":
                raise ValueError("sort must be timestamp")
            pos = 0
        if due_through_ns is not None:
            hi = min(hi, due_through_ns)
        sips, rows = self._symbols().get(ticker, ([], []))
        first = bisect.bisect_left(sips, lo)
        last = bisect.bisect_right(sips, hi)
        window = rows[first:last] if order == "asc" else rows[first:last][::-1]
        page = window[pos : pos + limit]
        body: dict[str, Any] = {
            "results": [rest_trade_row(t) for t in page],
            "status": "OK",
            "request_id": "replay",
        }
        if pos + limit < len(window):
            state = {"lo": lo, "hi": hi, "limit": limit, "order": order, "pos": pos + limit}
            token = base64.urlsafe_b64encode(orjson.dumps(state)).decode().rstrip("=")
            body["next_url"] = f"{rest_url}/v3/trades/{quote(ticker)}?cursor={token}"
        return body


def json_response(status: http.HTTPStatus, body: object) -> Response:
    """Return a JSON HTTP response that closes the connection."""
    payload = orjson.dumps(body)
    headers = Headers(
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(payload))),
            ("Connection", "close"),
        ]
    )
    return Response(status.value, status.phrase, headers, payload)


def parse_ts(text: str, *, end: bool) -> int:
    """Return ns of a REST ``timestamp`` value: ns digits or a date (whole day)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        d = date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"timestamp {text!r} is neither ns nor YYYY-MM-DD") from None
    start = int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()) * NS_PER_S
    return start + 86_400 * NS_PER_S - 1 if end else start


def time_bounds(query: dict[str, str]) -> tuple[int, int]:
    """Return the inclusive ns bounds that ``timestamp`` and its ``.gte``, ``.lt``... ask."""
    lo, hi = 0, 2**63 - 1
    if "timestamp" in query:
        lo = parse_ts(query["timestamp"], end=False)
        hi = lo if query["timestamp"].strip().isdigit() else parse_ts(query["timestamp"], end=True)
    if "timestamp.gte" in query:
        lo = max(lo, parse_ts(query["timestamp.gte"], end=False))
    if "timestamp.gt" in query:
        lo = max(lo, parse_ts(query["timestamp.gt"], end=True) + 1)
    if "timestamp.lte" in query:
        hi = min(hi, parse_ts(query["timestamp.lte"], end=True))
    if "timestamp.lt" in query:
        hi = min(hi, parse_ts(query["timestamp.lt"], end=False) - 1)
    return lo, hi
