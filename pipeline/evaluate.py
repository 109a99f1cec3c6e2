"""Do the signals pay? Forward returns after BUY/SELL signals against random entry times.

For every BUY or SELL print (rule v1), the forward log return over each horizon ``h``
(1, 5 and 30 minutes) is ``log P(t + h) - log P(t)``, where ``P(t)`` is the signal print's
price and ``P(t + h)`` the previous-tick price at ``t + h``: the last regular-hours print of
the same symbol at or before ``t + h`` on the same day. A horizon that would cross the
session close is not measured (no returns across days or overnight). A SELL counts the
return with its sign flipped, so a positive "signed return" is a signal that paid.

Per horizon, per symbol and for all symbols pooled (symbol ``*``):

- ``n`` signals measured, hit rate (share of signed returns > 0; zero returns are not
  hits), mean and standard deviation in basis points, and a t-statistic whose standard
  error allows for **overlapping windows**: two returns of one symbol-day whose windows
  overlap share price moves, so their covariance counts with the share of the window they
  have in common, ``max(0, 1 - |t_i - t_j| / h)`` (a Bartlett kernel in time, the
  Newey-West idea with a bandwidth of one horizon; positive semi-definite). Symbol-days are
  taken as independent. ``n_effective`` = n x (plain variance / this variance) is how
  many independent observations the sample is worth; degrees of freedom = n_effective - 1.
- The same for **random entries** on the same symbol-days: ``max(RANDOM_MIN_PER_DAY,
  RANDOM_PER_SIGNAL x signals)`` entry times per symbol-day, uniform over the session after
  its first print, seeded (``seed``, symbol, day), each a BUY with the probability of that
  symbol-day's BUY share, so the baseline carries the same long/short mix. Random entries
  with independent directions are treated as independent (plain standard error).
- The **edge** (signal mean - random mean), its Welch t-statistic and two-sided p-value,
  and the p-value adjusted for the number of tests in the evaluation (Bonferroni), since
  three horizons times every symbol is many chances to find something by luck.

Verdicts, with the thresholds stored next to them:

- ``too_few_signals`` when fewer than ``MIN_SIGNALS`` signals were measured or they are worth
  fewer than ``MIN_EFFECTIVE`` independent observations: nothing can be said, and nothing
  is claimed;
- ``edge`` / ``negative_edge`` when the adjusted p-value is below ``ALPHA``;
- ``no_edge`` otherwise (the data do not distinguish the signals from random entries).

Pure: frames in, frames out; the command reads and writes the warehouse.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd

from pipeline._typing import Float64Array, Int64Array
from pipeline.warehouse.schema import EVALUATION_COLUMNS
from udx.kernels import Params, session_bounds

HORIZONS_S: tuple[int, ...] = (60, 300, 1800)
MIN_SIGNALS = 30
MIN_EFFECTIVE = 10
RANDOM_PER_SIGNAL = 20
RANDOM_MIN_PER_DAY = 200
ALPHA = 0.05
DEFAULT_SEED = 20240304
ALL_SYMBOLS = "*"
NS_PER_S = 1_000_000_000

VERDICT_TEXT: dict[str, str] = {
    "too_few_signals": "too few signals to say anything",
    "edge": "signals beat random entries",
    "negative_edge": "signals do worse than random entries",
    "no_edge": "no evidence of an edge over random entries",
}

# Columns of table signal_evaluation (sql/migrations/0009_create_signal_evaluation.sql).


@dataclass(frozen=True)
class EvaluationConfig:
    """Parameters of an evaluation (stored with every row)."""

    horizons_s: tuple[int, ...] = HORIZONS_S
    min_signals: int = MIN_SIGNALS
    min_effective: float = MIN_EFFECTIVE
    random_per_signal: int = RANDOM_PER_SIGNAL
    random_min_per_day: int = RANDOM_MIN_PER_DAY
    alpha: float = ALPHA
    seed: int = DEFAULT_SEED


@dataclass
class _Obs:
    """Signed returns of one group and horizon, one array per symbol-day."""

    returns: list[Float64Array] = field(default_factory=lambda: [])
    times: list[Int64Array] = field(default_factory=lambda: [])
    random: list[Float64Array] = field(default_factory=lambda: [])
    random_times: list[Int64Array] = field(default_factory=lambda: [])
    n_buy: int = 0
    n_sell: int = 0
    days: set[str] = field(default_factory=lambda: set[str]())


def previous_tick_returns(
    ts_ns: Int64Array,
    log_price: Float64Array,
    entry_ns: Int64Array,
    entry_log_price: Float64Array,
    horizon_ns: int,
    close_ns: int,
) -> Float64Array:
    """Return ``log P(t + h) - log P(t)`` with previous-tick ``P(t + h)``; NaN past the close.

    Parameters
    ----------
    ts_ns, log_price
        The day's prints of one symbol, in partition order (non-decreasing stamps).
    entry_ns, entry_log_price
        Entry times and log prices.
    horizon_ns
        The horizon.
    close_ns
        Session close: an entry with ``t + h`` after it is not measured (NaN).

    Returns
    -------
    numpy.ndarray
        One return per entry.
    """
    target = entry_ns + horizon_ns
    j = np.searchsorted(ts_ns, target, side="right") - 1
    out = log_price[np.maximum(j, 0)] - entry_log_price
    return np.where((target > close_ns) | (j < 0), np.nan, out)


def overlap_cross_sum(entry_ns: Int64Array, e: Float64Array, horizon_ns: int) -> float:
    """Return ``sum_{i != j} w_ij e_i e_j`` with ``w_ij = max(0, 1 - |t_i - t_j| / h)``.

    Parameters
    ----------
    entry_ns
        Entry times of one symbol-day, sorted.
    e
        Deviations from the mean, same order.
    horizon_ns
        Window length ``h``.

    Returns
    -------
    float
        The overlap-weighted cross products (both orders of each pair).
    """
    n = int(entry_ns.shape[0])
    total = 0.0
    lag = 1
    while lag < n:
        gap = entry_ns[lag:] - entry_ns[:-lag]
        w = 1.0 - gap / horizon_ns
        ok = w > 0
        if not ok.any():
            break  # sorted times: a larger lag only widens the gaps
        total += float((w[ok] * e[lag:][ok] * e[:-lag][ok]).sum())
        lag += 1
    return 2.0 * total


def _seed_for(seed: int, symbol: str, day: str) -> int:
    digest = hashlib.sha256(f"{seed}:{symbol}:{day}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


@dataclass(frozen=True)
class Stat:
    """Mean, spread and t of a sample of signed returns (basis points)."""

    n: int
    hit_rate: float | None
    mean_bp: float | None
    sd_bp: float | None
    t: float | None
    se_bp: float | None
    n_effective: float


def overlap_stat(
    returns: Sequence[Float64Array], times: Sequence[Int64Array], horizon_ns: int
) -> Stat:
    """Return the mean and its t-statistic with an overlap-aware standard error.

    Parameters
    ----------
    returns
        Signed returns (log units), one array per symbol-day.
    times
        Their entry times, same shapes, sorted within each array.
    horizon_ns
        The horizon: returns closer than this in time share part of their window.

    Returns
    -------
    Stat
        ``var(mean) = (sum_i e_i^2 + sum_{i != j} w_ij e_i e_j) / n^2`` with the weights of
        :func:`overlap_cross_sum` inside each symbol-day; ``n_effective`` = n x plain
        variance / this variance (n when the returns do not overlap).
    """
    r = np.concatenate(list(returns)) * 1e4 if returns else np.empty(0)
    n = int(r.shape[0])
    if n == 0:
        return Stat(0, None, None, None, None, None, 0.0)
    mean = float(r.mean())
    hit = float((r > 0).mean())
    if n < 2:
        return Stat(n, hit, mean, None, None, None, 1.0)
    sd = float(r.std(ddof=1))
    ss = float(((r - mean) ** 2).sum())
    cross = sum(
        overlap_cross_sum(t, rr * 1e4 - mean, horizon_ns)
        for rr, t in zip(returns, times, strict=True)
        if rr.shape[0] > 1
    )
    var = max(ss + cross, 0.0) / n**2
    if var <= 0.0:
        return Stat(n, hit, mean, sd, None, None, float(n))
    se = math.sqrt(var * n / (n - 1))  # the small-sample factor of the plain variance
    n_eff = min(float(n), n * (ss / n**2) / var) if var > 0 else float(n)
    return Stat(n, hit, mean, sd, mean / se, se, n_eff)


def _edge(sig: Stat, rnd: Stat) -> tuple[float | None, float | None, float | None]:
    from scipy import stats

    if sig.mean_bp is None or rnd.mean_bp is None or sig.se_bp is None or rnd.se_bp is None:
        return None, None, None
    edge = sig.mean_bp - rnd.mean_bp
    se2 = sig.se_bp**2 + rnd.se_bp**2
    df_sig, df_rnd = max(sig.n_effective - 1.0, 1.0), max(rnd.n_effective - 1.0, 1.0)
    if se2 <= 0:
        return edge, None, None
    t = edge / math.sqrt(se2)
    # Welch-Satterthwaite degrees of freedom, from the effective sample sizes.
    df = se2**2 / (sig.se_bp**4 / df_sig + rnd.se_bp**4 / df_rnd)
    p = float(2.0 * stats.t.sf(abs(t), df))
    return edge, t, p


def _none(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def evaluate_signals(
    trade_signals: pd.DataFrame,
    config: EvaluationConfig | None = None,
    params: Params | None = None,
    progress: Callable[[int, int, str, str], None] | None = None,
) -> pd.DataFrame:
    """Evaluate every BUY/SELL signal of ``trade_signals`` against random entries.

    Parameters
    ----------
    trade_signals
        Per-print rows (``trading_signals`` or ``trade_signals.parquet``): ``symbol``,
        ``date``, ``timestamp_ns``, ``price``, ``trading_signal``, in partition order.
    config
        Horizons, thresholds, seed.
    params
        Session clock (open/close); defaults when omitted.
    progress
        Called as ``progress(done, total, symbol, day)`` after each symbol-day.

    Returns
    -------
    pandas.DataFrame
        One row per (symbol or ``*``, horizon) with the columns of
        :data:`EVALUATION_COLUMNS` from ``n_signals`` to ``verdict`` (plus ``symbol`` and
        ``horizon_s``), sorted with ``*`` first.
    """
    cfg = config or EvaluationConfig()
    p = params or Params()
    groups: dict[tuple[str, int], _Obs] = {}
    frame = trade_signals
    keys = cast(
        "list[tuple[tuple[Any, Any], Int64Array]]",
        list(frame.groupby(["symbol", "date"], sort=True).indices.items()),
    )
    for done, ((sym, d), idx) in enumerate(keys, 1):
        symbol, day = str(sym), str(d)
        part = frame.iloc[np.sort(idx)]
        ts = part["timestamp_ns"].to_numpy(dtype=np.int64)
        logp = np.log(part["price"].to_numpy(dtype=np.float64))
        side = part["trading_signal"].to_numpy(dtype=object)
        is_buy, is_sell = side == "BUY", side == "SELL"
        sig = np.flatnonzero(is_buy | is_sell)
        _, close_ns = session_bounds(day, p)
        direction = np.where(is_buy[sig], 1.0, -1.0)
        n_sig = int(sig.shape[0])
        buy_share = float(is_buy[sig].mean()) if n_sig else 0.5
        rng = np.random.default_rng(_seed_for(cfg.seed, symbol, day))
        n_rand = max(cfg.random_min_per_day, cfg.random_per_signal * n_sig)
        if ts.shape[0]:
            lo, hi = int(ts[0]), int(close_ns)
            r_ns = np.sort(rng.integers(lo, max(hi, lo + 1), size=n_rand, dtype=np.int64))
            r_dir = np.where(rng.random(n_rand) < buy_share, 1.0, -1.0)
            r_j = np.searchsorted(ts, r_ns, side="right") - 1
            r_logp = logp[np.maximum(r_j, 0)]
        else:
            r_ns, r_dir, r_logp = (np.empty(0, dtype=np.int64), np.empty(0), np.empty(0))
        for h in cfg.horizons_s:
            h_ns = h * NS_PER_S
            r = previous_tick_returns(ts, logp, ts[sig], logp[sig], h_ns, close_ns) * direction
            ok = np.isfinite(r)
            rr = previous_tick_returns(ts, logp, r_ns, r_logp, h_ns, close_ns) * r_dir
            n_buy = int(is_buy[sig][ok].sum())
            r_ok = np.isfinite(rr)
            for g in (symbol, ALL_SYMBOLS):
                obs = groups.setdefault((g, h), _Obs())
                obs.returns.append(r[ok])
                obs.times.append(ts[sig][ok])
                obs.random.append(rr[r_ok])
                obs.random_times.append(r_ns[r_ok])
                obs.n_buy += n_buy
                obs.n_sell += int(ok.sum()) - n_buy
                if ok.any():
                    obs.days.add(day)
        if progress is not None:
            progress(done, len(keys), symbol, day)
    rows: list[dict[str, Any]] = []
    for (g, h), obs in groups.items():
        h_ns = h * NS_PER_S
        s = overlap_stat(obs.returns, obs.times, h_ns)
        rs = overlap_stat(obs.random, obs.random_times, h_ns)
        edge, edge_t, edge_p = _edge(s, rs)
        enough = s.n >= cfg.min_signals and s.n_effective >= cfg.min_effective
        rows.append(
            {
                "symbol": g,
                "horizon_s": h,
                "n_signals": s.n,
                "n_buy": obs.n_buy,
                "n_sell": obs.n_sell,
                "n_effective": s.n_effective,
                "n_days": len(obs.days),
                "hit_rate": s.hit_rate,
                "mean_bp": s.mean_bp,
                "sd_bp": s.sd_bp,
                "t_stat": _none(s.t),
                "random_n": rs.n,
                "random_hit_rate": rs.hit_rate,
                "random_mean_bp": rs.mean_bp,
                "random_sd_bp": rs.sd_bp,
                "random_t_stat": _none(rs.t),
                "edge_bp": edge,
                "edge_t_stat": _none(edge_t),
                "edge_p_value": edge_p,
                "edge_p_adjusted": None,
                "verdict": "too_few_signals" if not enough or edge_p is None else "",
            }
        )
    tested = [row for row in rows if row["verdict"] == ""]
    for row in tested:
        adjusted = min(1.0, float(row["edge_p_value"]) * len(tested))
        row["edge_p_adjusted"] = adjusted
        if adjusted < cfg.alpha:
            row["verdict"] = "edge" if float(row["edge_bp"]) > 0 else "negative_edge"
        else:
            row["verdict"] = "no_edge"
    out = pd.DataFrame(rows, columns=list(EVALUATION_COLUMNS[4:25]))
    if out.empty:
        return out
    order = out["symbol"].map(lambda s: "" if s == ALL_SYMBOLS else str(s))
    out = out.assign(_o=order).sort_values(["_o", "horizon_s"]).drop(columns="_o")
    return out.reset_index(drop=True)


def stamp_evaluation(
    result: pd.DataFrame,
    *,
    evaluation_id: str,
    computed_ns: int,
    start_date: str,
    end_date: str,
    config: EvaluationConfig,
    kernel_version: str | None,
    signal_runs: dict[str, str],
) -> pd.DataFrame:
    """Add the provenance columns of table ``signal_evaluation`` to an evaluation result.

    Parameters
    ----------
    result
        :func:`evaluate_signals` output.
    evaluation_id, computed_ns, start_date, end_date
        Identity of this evaluation.
    config
        Thresholds and seed.
    kernel_version
        Kernel version of the signals evaluated (None if mixed or unknown).
    signal_runs
        ``{day: run_id}`` of the signal runs evaluated.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`EVALUATION_COLUMNS`, in order.
    """
    out = result.copy()
    out["evaluation_id"] = evaluation_id
    out["computed_ns"] = computed_ns
    out["start_date"] = start_date
    out["end_date"] = end_date
    out["min_signals"] = config.min_signals
    out["random_per_signal"] = config.random_per_signal
    out["seed"] = config.seed
    out["kernel_version"] = kernel_version
    out["signal_runs"] = json.dumps(signal_runs, sort_keys=True)
    return cast("pd.DataFrame", out.loc[:, list(EVALUATION_COLUMNS)])


def summary_lines(result: pd.DataFrame, config: EvaluationConfig | None = None) -> list[str]:
    """Return plain sentences saying what the evaluation found (the pooled rows first).

    Parameters
    ----------
    result
        :func:`evaluate_signals` output.
    config
        Thresholds (for the wording of small samples).

    Returns
    -------
    list[str]
        One line per horizon of the pooled group, then one per symbol with an edge.
    """
    cfg = config or EvaluationConfig()
    lines: list[str] = []
    if result.empty:
        return ["no signals and no prints in the range: nothing to evaluate"]
    for row in cast("Iterable[dict[str, Any]]", result.to_dict(orient="records")):
        pooled = row["symbol"] == ALL_SYMBOLS
        if not pooled and row["verdict"] not in ("edge", "negative_edge"):
            continue
        who = "all symbols" if pooled else str(row["symbol"])
        h = _horizon_text(int(row["horizon_s"]))
        if row["verdict"] == "too_few_signals":
            lines.append(
                f"{who}, {h}: {row['n_signals']} signals, worth {row['n_effective']:.0f} "
                f"independent observations: too few signals to say anything (needs "
                f"{cfg.min_signals} signals worth {cfg.min_effective:g})"
            )
            continue
        lines.append(
            f"{who}, {h}: {VERDICT_TEXT[str(row['verdict'])]}: signals "
            f"{row['mean_bp']:+.2f} bp (hit {row['hit_rate']:.0%}, n {row['n_signals']:,}, "
            f"t {_fmt(row['t_stat'])}) vs random {row['random_mean_bp']:+.2f} bp "
            f"(hit {row['random_hit_rate']:.0%}, n {row['random_n']:,}); edge "
            f"{row['edge_bp']:+.2f} bp, t {_fmt(row['edge_t_stat'])}, "
            f"p {row['edge_p_value']:.3g} (adjusted {row['edge_p_adjusted']:.3g})"
        )
    return lines


def _fmt(x: Any) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:+.2f}"


def _horizon_text(h: int) -> str:
    return f"{h // 60} min" if h % 60 == 0 else f"{h} s"


def significant(result: pd.DataFrame) -> pd.DataFrame:
    """Return the rows whose verdict is ``edge`` or ``negative_edge``."""
    return cast("pd.DataFrame", result[result["verdict"].isin(["edge", "negative_edge"])])


def horizons_text(horizons: Sequence[int]) -> str:
    """Return ``1 min, 5 min, 30 min``."""
    return ", ".join(_horizon_text(h) for h in horizons)
