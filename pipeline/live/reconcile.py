"""Live records of a day against the batch ``trading_signals`` of that day (pure).

Input: the ``trading-signals`` records as read (headers and value) and the batch rows of the
day with their input ``(kafka_partition, kafka_offset)``. :func:`collect_live` keeps the
``signal.v1`` records of the day and input topic, deduplicated on the idempotent key, the
input ``(topic, partition, offset)`` (docs/live.md): a duplicate with another value is a
conflict. :func:`reconcile` joins live and batch per trade on the input offset (the batch
row's lineage, ``market_data.kafka_partition/kafka_offset``) and compares:

- causal columns (statistics.md 7, rel 1e-9): ``log_return``, ``lee_mykland_stat``,
  ``bns_stat`` on every trade, ``trade_intensity_zscore`` at each bucket's last print (before
  it the live z is of the count so far); also the print itself (symbol, time, price). A
  trade that disagrees on any of them, a batch trade without a live record, a live record
  without a batch trade and a conflicting duplicate each count in ``causal_mismatches``
  (0 expected);
- columns that depend on the whole day (``lm_xi``, the flag and the signal on the day's
  ``n``; GARCH and ACD on the day's fits): agreement rates and the largest differences,
  with the live records' ``lm_n_rule`` and parameter provenance that explain them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import orjson
import pandas as pd

from pipeline.kafka.codec import SCHEMA_REJECT, SCHEMA_SIGNAL
from udx.kernels import Params, session_bounds

REL_TOL = 1e-9
NEAR_PCT = 0.05
CAUSAL_EVERY_TRADE: tuple[str, ...] = ("log_return", "lee_mykland_stat", "bns_stat")
INTENSITY = "trade_intensity_zscore"
WHOLE_DAY_FLOATS: tuple[str, ...] = (
    "lm_xi",
    "garch_sigma2",
    "standardized_return",
    "conditional_duration",
    "acd_surprise",
)
WHOLE_DAY_LABELS: tuple[str, ...] = ("jump_detected", "trading_signal")
_LIVE_FIELDS: tuple[str, ...] = (
    "symbol", "timestamp_ns", "price", *CAUSAL_EVERY_TRADE, INTENSITY, *WHOLE_DAY_FLOATS,
    *WHOLE_DAY_LABELS, "lm_n", "lm_n_rule", "garch_params", "acd_params",
)  # fmt: skip

RawRecord = tuple[Sequence[tuple[str, bytes | None]] | None, bytes | None]
"""``(headers, value)`` of one record of the signals topic."""


@dataclass
class LiveSet:
    """The day's live signals, one per input offset, and what else the topic held."""

    records: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    conflicts: list[tuple[int, int]] = field(default_factory=list)


def collect_live(raw: Iterable[RawRecord], day: str, input_topic: str) -> LiveSet:
    """Keep the ``signal.v1`` records of ``day`` and ``input_topic``, one per input offset.

    Parameters
    ----------
    raw
        Records of the signals topic, in any order.
    day
        ``YYYY-MM-DD`` (the record's ``date``).
    input_topic
        The market-data topic the batch loaded (records of other inputs are counted).

    Returns
    -------
    LiveSet
        Records keyed by ``(input partition, input offset)``; counts of duplicates, rejects,
        other days and topics, undecodable records; keys whose duplicates differ.
    """
    out = LiveSet()
    first_value: dict[tuple[int, int], bytes] = {}
    for headers, value in raw:
        h = dict(headers or ())
        schema = h.get("schema") or b""
        if schema == SCHEMA_REJECT:
            out.counts["rejects"] += 1
            continue
        if schema != SCHEMA_SIGNAL:
            out.counts[f"other_schema:{schema.decode(errors='replace') or 'none'}"] += 1
            continue
        try:
            topic = (h.get("input_topic") or b"").decode()
            key = (int(h.get("input_partition") or b""), int(h.get("input_offset") or b""))
            obj = orjson.loads(value or b"")
            rec_day = str(obj["date"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            out.counts["undecodable"] += 1
            continue
        if topic != input_topic:
            out.counts["other_input_topic"] += 1
            continue
        if rec_day != day:
            out.counts["other_day"] += 1
            continue
        seen = first_value.get(key)
        if seen is not None:
            out.counts["duplicates"] += 1
            if seen != value:
                out.conflicts.append(key)
            continue
        first_value[key] = value or b""
        out.records[key] = {k: obj.get(k) for k in _LIVE_FIELDS}
    out.counts["signals"] = len(out.records)
    return out


def _rel_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    scale = np.maximum(np.abs(a), np.abs(b))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(a == b, 0.0, np.abs(a - b) / scale)


def _agree(a: np.ndarray, b: np.ndarray, tol: float) -> np.ndarray:
    """Both null, or both finite within ``tol`` relative."""
    na, nb = np.isnan(a), np.isnan(b)
    return (na & nb) | (~na & ~nb & (_rel_diff(a, b) <= tol))


def _col(frame: pd.DataFrame, col: str) -> pd.Series:
    return cast("pd.Series", frame[col])


def _floats(frame: pd.DataFrame, col: str) -> np.ndarray:
    return cast("pd.Series", pd.to_numeric(_col(frame, col), errors="coerce")).to_numpy(
        dtype=np.float64, na_value=np.nan
    )


def _ints(frame: pd.DataFrame, col: str) -> np.ndarray:
    values = cast("pd.Series", pd.to_numeric(_col(frame, col), errors="coerce"))
    return values.fillna(-1).to_numpy(dtype=np.int64)


def _texts(frame: pd.DataFrame, col: str) -> np.ndarray:
    return _col(frame, col).astype(str).to_numpy()


@dataclass
class Reconciliation:
    """The comparison of one day (see the module docstring)."""

    day: str
    causal_mismatches: int
    compared: int
    missing_live: int
    missing_batch: int
    conflicting_duplicates: int
    causal: dict[str, int]
    whole_day: dict[str, dict[str, Any]]
    live: dict[str, int]
    provenance: dict[str, dict[str, int]]
    examples: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        """Return the result as one JSON-ready object."""
        return {
            "day": self.day,
            "causal_mismatches": self.causal_mismatches,
            "compared": self.compared,
            "missing_live": self.missing_live,
            "missing_batch": self.missing_batch,
            "conflicting_duplicates": self.conflicting_duplicates,
            "causal": self.causal,
            "whole_day": self.whole_day,
            "live": self.live,
            "provenance": self.provenance,
            "examples": self.examples,
        }

    def lines(self) -> list[str]:
        """Return the plain-text report."""
        out = [
            f"reconcile {self.day}: {self.compared:,} trades joined on input offset; "
            f"causal mismatches {self.causal_mismatches:,} (missing live {self.missing_live:,}, "
            f"missing batch {self.missing_batch:,}, conflicting duplicates "
            f"{self.conflicting_duplicates:,})",
            "causal columns (rel 1e-9), disagreeing trades:",
        ]
        out += [f"  {name:<34} {n:,}" for name, n in self.causal.items()]
        out.append("whole-day columns (provisional n, previous fits): agree rate, largest diff")
        for name, s in self.whole_day.items():
            if "max_rel_diff" in s:
                out.append(
                    f"  {name:<22} agree {s['agree_rate']:.4f}  within 5% {s['near_rate']:.4f}"
                    f"  median rel {_fmt(s['median_rel_diff'])}  max abs {_fmt(s['max_abs_diff'])}"
                    f"  max rel {_fmt(s['max_rel_diff'])}  null live/batch only "
                    f"{s['null_live_only']:,}/{s['null_batch_only']:,}"
                )
            else:
                out.append(
                    f"  {name:<22} agree {s['agree_rate']:.4f}  live only {s['live_only']:,}"
                    f"  batch only {s['batch_only']:,}"
                )
        for name, counts in self.provenance.items():
            text = ", ".join(f"{k}: {v:,}" for k, v in counts.items())
            out.append(f"live {name}: {text}")
        if self.live:
            out.append("signals topic: " + ", ".join(f"{k} {v:,}" for k, v in self.live.items()))
        for ex in self.examples:
            out.append(f"  mismatch: {orjson.dumps(ex).decode()}")
        return out


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def _opt(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def reconcile(
    live: LiveSet,
    batch: pd.DataFrame,
    day: str,
    params: Params | None = None,
    *,
    rel_tol: float = REL_TOL,
    max_examples: int = 5,
) -> Reconciliation:
    """Compare the day's live records with its batch rows, trade by trade.

    Parameters
    ----------
    live
        From :func:`collect_live`.
    batch
        Rows of the read ``trading_signals_of_day`` (columns
        :data:`pipeline.warehouse.queries.RECONCILE_COLUMNS`).
    day
        ``YYYY-MM-DD``.
    params
        Parameters of the statistics (session and intensity buckets).
    rel_tol
        Relative tolerance of the causal columns (statistics.md 7).
    max_examples
        Disagreeing trades listed in the result.

    Returns
    -------
    Reconciliation
        Counts, rates and largest differences.
    """
    p = params or Params()
    lv = pd.DataFrame.from_dict(live.records, orient="index", columns=list(_LIVE_FIELDS))
    if len(lv):
        lv.index = pd.MultiIndex.from_tuples(list(lv.index), names=["partition", "offset"])
    else:
        lv.index = pd.MultiIndex.from_tuples([], names=["partition", "offset"])
    b = batch.copy()
    b.index = pd.MultiIndex.from_arrays(
        [b["kafka_partition"].astype("int64"), b["kafka_offset"].astype("int64")],
        names=["partition", "offset"],
    )
    joined = b.join(lv, how="inner", suffixes=("", "_live"))
    missing_live = int((~b.index.isin(lv.index)).sum())
    missing_batch = int((~lv.index.isin(b.index)).sum())

    bad = np.zeros(len(joined), dtype=bool)
    causal: dict[str, int] = {}
    ident = _texts(joined, "symbol") == _texts(joined, "symbol_live")
    ident &= _ints(joined, "timestamp_ns") == _ints(joined, "timestamp_ns_live")
    ident &= _agree(_floats(joined, "price"), _floats(joined, "price_live"), 0.0)
    causal["print (symbol, time, price)"] = int((~ident).sum())
    bad |= ~ident
    for col in CAUSAL_EVERY_TRADE:
        ok = _agree(_floats(joined, col), _floats(joined, f"{col}_live"), rel_tol)
        causal[col] = int((~ok).sum())
        bad |= ~ok
    # Intensity: the batch's z is the complete bucket's; the live one equals it at the
    # bucket's last print (in the batch's partition order).
    open_ns, _ = session_bounds(day, p)
    bucket_ns = p.intensity_bucket_s * 1_000_000_000
    bucket = np.minimum((_ints(joined, "timestamp_ns") - open_ns) // bucket_ns, p.n_buckets - 1)
    full = pd.DataFrame(
        {
            "symbol": _texts(b, "symbol"),
            "bucket": np.minimum(
                (_ints(b, "timestamp_ns") - open_ns) // bucket_ns, p.n_buckets - 1
            ),
            "seq": _ints(b, "seq"),
        }
    )
    last_seq = cast("pd.Series", full.groupby(["symbol", "bucket"])["seq"].max())
    keys = pd.MultiIndex.from_arrays([_texts(joined, "symbol"), bucket])
    is_last = _ints(joined, "seq") == last_seq.reindex(keys).to_numpy()
    ok = _agree(_floats(joined, INTENSITY), _floats(joined, f"{INTENSITY}_live"), rel_tol)
    causal[f"{INTENSITY} (bucket's last print)"] = int((is_last & ~ok).sum())
    causal["intensity prints compared"] = int(is_last.sum())
    bad |= is_last & ~ok

    whole: dict[str, dict[str, Any]] = {}
    n = len(joined)
    for col in WHOLE_DAY_FLOATS:
        a, c = _floats(joined, col), _floats(joined, f"{col}_live")
        both = ~np.isnan(a) & ~np.isnan(c)
        rel = _rel_diff(a[both], c[both])
        absd = np.abs(a[both] - c[both])
        agree = _agree(a, c, rel_tol)
        near = (np.isnan(a) & np.isnan(c)) | (both & (_rel_diff(a, c) <= NEAR_PCT))
        whole[col] = {
            "agree_rate": float(agree.mean()) if n else 1.0,
            "near_rate": float(near.mean()) if n else 1.0,
            "both_values": int(both.sum()),
            "null_live_only": int((np.isnan(c) & ~np.isnan(a)).sum()),
            "null_batch_only": int((np.isnan(a) & ~np.isnan(c)).sum()),
            "median_rel_diff": _opt(float(np.median(rel))) if rel.size else None,
            "max_rel_diff": _opt(float(rel.max())) if rel.size else None,
            "max_abs_diff": _opt(float(absd.max())) if absd.size else None,
        }
    for col in WHOLE_DAY_LABELS:
        a = _col(joined, col).to_numpy()
        c = _col(joined, f"{col}_live").to_numpy()
        same = a == c
        if col == "jump_detected":
            a_b, c_b = a.astype(bool), c.astype(bool)
            live_only, batch_only = int((c_b & ~a_b).sum()), int((a_b & ~c_b).sum())
        else:
            live_only = int(((c != "HOLD") & ~same).sum())
            batch_only = int(((a != "HOLD") & ~same).sum())
        whole[col] = {
            "agree_rate": float(same.mean()) if n else 1.0,
            "live_only": live_only,
            "batch_only": batch_only,
        }
    provenance = {
        "lm_n_rule": _value_counts(_col(lv, "lm_n_rule")),
        "garch_params": _value_counts(_col(lv, "garch_params").map(_provided)),
        "acd_params": _value_counts(_col(lv, "acd_params").map(_provided)),
    }
    examples = [
        {
            "partition": int(i[0]),
            "offset": int(i[1]),
            "symbol": str(r["symbol"]),
            "seq": int(r["seq"]),
            **{c: [_num(r[c]), _num(r[f"{c}_live"])] for c in (*CAUSAL_EVERY_TRADE, INTENSITY)},
        }
        for i, r in cast("pd.DataFrame", joined[bad]).head(max_examples).to_dict("index").items()
    ]
    conflicts = len(live.conflicts)
    return Reconciliation(
        day=day,
        causal_mismatches=int(bad.sum()) + missing_live + missing_batch + conflicts,
        compared=n,
        missing_live=missing_live,
        missing_batch=missing_batch,
        conflicting_duplicates=conflicts,
        causal=causal,
        whole_day=whole,
        live=dict(sorted(live.counts.items())),
        provenance=provenance,
        examples=examples,
    )


def _provided(source: object) -> str:
    return "none" if source is None else "previous fit"


def _value_counts(s: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in s.fillna("none").value_counts().sort_index().items()}


def _num(x: object) -> float | None:
    if x is None or x is pd.NA:
        return None
    v = float(x)  # type: ignore[arg-type]
    return None if math.isnan(v) else v


def from_mapping(rows: Mapping[tuple[int, int], Mapping[str, Any]]) -> LiveSet:
    """Return a :class:`LiveSet` of already decoded records (tests, other readers)."""
    out = LiveSet()
    for key, rec in rows.items():
        out.records[key] = {k: rec.get(k) for k in _LIVE_FIELDS}
    out.counts["signals"] = len(out.records)
    return out
