"""Synthetic trade tapes with a known truth: ACD arrivals, U-shaped volatility, planted jumps.

Model, per (symbol, New York day), regular hours only:

- Events (distinct stamps) arrive by a Weibull ACD(1,1) in diurnally adjusted time: the
  adjusted durations ``xt_i = psi_i eps_i`` (``E eps = 1``) are stretched by a U-shaped
  intensity pattern (busy open and close), scaled so that the day holds about
  ``trades_per_day`` prints. Each event carries ``1 + Poisson(prints_per_event - 1)`` prints
  sharing its stamp (a sweep printing several times).
- The efficient log price is a Brownian motion with U-shaped spot variance (integrated
  variance ``daily_vol^2``); prints at one stamp see the same efficient price.
- ``jumps_per_day`` jumps are planted at the first print of randomly chosen events (never in
  the first ``min_jump_position`` prints, so the LM window is full), each of size
  ``U(jump_sd_low, jump_sd_high)`` local per-trade sd with a random sign, where the local
  per-trade sd is ``sigma(t) sqrt(E[duration at t])``.
- Observed price = ``exp(X + noise)`` with i.i.d. Gaussian noise of ``noise_bp`` basis
  points, rounded to ``tick`` (0 = no rounding).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd

from udx.kernels import Params, session_bounds

DEFAULT_SYMBOLS: tuple[str, ...] = ("SIMA", "SIMB")
DEFAULT_DAYS: tuple[str, ...] = ("2024-03-04", "2024-03-05", "2024-03-06")


@dataclass(frozen=True)
class SimulationConfig:
    """Parameters of a synthetic tape (defaults: 2 symbols x 3 days, ~96,000 prints)."""

    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    days: tuple[str, ...] = DEFAULT_DAYS
    trades_per_day: int = 16_000
    prints_per_event: float = 1.0
    acd_alpha: float = 0.1
    acd_beta: float = 0.85
    weibull_gamma: float = 0.7
    intraday_intensity_u: float = 2.0  # intensity at open/close = (1 + u) x mid-day
    daily_vol: float = 0.015
    intraday_vol_u: float = 3.0  # spot variance at open/close = (1 + u) x mid-day
    jumps_per_day: int = 3
    jump_sd_low: float = 8.0
    jump_sd_high: float = 15.0
    min_jump_position: int = 600
    noise_bp: float = 0.0
    tick: float = 0.0
    start_price: float = 100.0
    seed: int = 20240304
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as a JSON-ready dict."""
        d = asdict(self)
        d["symbols"] = list(self.symbols)
        d["days"] = list(self.days)
        return d


@dataclass(frozen=True)
class SyntheticTape:
    """A generated tape and its truth."""

    trades: pd.DataFrame  # timestamp_ns, symbol, price, size (partition order)
    truth: pd.DataFrame  # one row per planted jump
    config: SimulationConfig


def _u_shape(tau: np.ndarray) -> np.ndarray:
    """``(2 tau - 1)^2``: 1 at the open and close, 0 at mid-day."""
    return (2.0 * tau - 1.0) ** 2


def _simulate_day(
    rng: np.random.Generator,
    noise_rng: np.random.Generator,
    cfg: SimulationConfig,
    open_ns: int,
    close_ns: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
    span_s = (close_ns - open_ns) / 1e9
    n_events_target = cfg.trades_per_day / cfg.prints_per_event
    # Intensity lambda(tau) = 1 + u (2 tau - 1)^2 -> mean over the day 1 + u/3.
    lam_mean = 1.0 + cfg.intraday_intensity_u / 3.0
    base_duration = span_s / n_events_target * lam_mean  # duration at intensity 1

    def mean_duration(t: float) -> float:
        return base_duration / (1.0 + cfg.intraday_intensity_u * (2.0 * t / span_s - 1.0) ** 2)

    persistence = cfg.acd_alpha + cfg.acd_beta
    omega = 1.0 - persistence  # unconditional mean of xt = 1
    lam = math.gamma(1.0 + 1.0 / cfg.weibull_gamma)
    n_guess = int(n_events_target * 1.3) + 100
    eps = rng.weibull(cfg.weibull_gamma, size=n_guess) / lam
    times = [0.0]
    psi = 1.0
    xt_prev = 1.0
    t = 0.0
    i = 0
    while True:
        if i >= eps.shape[0]:
            eps = np.concatenate((eps, rng.weibull(cfg.weibull_gamma, size=n_guess) / lam))
        psi = omega + cfg.acd_alpha * xt_prev + cfg.acd_beta * psi
        xt = psi * float(eps[i])
        t += xt * mean_duration(t)
        if t > span_s:
            break
        times.append(t)
        xt_prev = xt
        i += 1
    ev_t = np.asarray(times)
    ev_ns = open_ns + np.round(ev_t * 1e9).astype(np.int64)
    ev_ns = np.maximum.accumulate(np.maximum(ev_ns, open_ns))
    # Distinct stamps: a collision after rounding to ns moves the later event 1 ns on.
    for k in range(1, ev_ns.shape[0]):
        if ev_ns[k] <= ev_ns[k - 1]:
            ev_ns[k] = ev_ns[k - 1] + 1
    ev_ns = np.minimum(ev_ns, close_ns)
    n_ev = ev_ns.shape[0]
    # Efficient price: integrated U-shaped variance over each spell.
    tau = ev_t / span_s
    var_shape = 1.0 + cfg.intraday_vol_u * _u_shape(tau)
    spot_var = cfg.daily_vol**2 / span_s * var_shape / (1.0 + cfg.intraday_vol_u / 3.0)
    dt_s = np.diff(ev_t, prepend=0.0)
    dx = np.sqrt(spot_var * dt_s) * rng.standard_normal(n_ev)
    dx[0] = 0.0
    # Prints per event.
    extra = (
        rng.poisson(cfg.prints_per_event - 1.0, size=n_ev)
        if cfg.prints_per_event > 1.0
        else np.zeros(n_ev, dtype=np.int64)
    )
    per_event = 1 + extra
    first_print = np.concatenate(([0], np.cumsum(per_event)[:-1]))
    # Jumps at the first print of random events, past the LM warm-up.
    eligible = np.flatnonzero(first_print >= cfg.min_jump_position)
    n_jumps = min(cfg.jumps_per_day, eligible.shape[0])
    jump_events = np.sort(rng.choice(eligible, size=n_jumps, replace=False))
    truth: list[dict[str, Any]] = []
    for ev in jump_events:
        local_sd = math.sqrt(float(spot_var[ev]) * mean_duration(float(ev_t[ev])))
        k_sd = float(rng.uniform(cfg.jump_sd_low, cfg.jump_sd_high))
        size = k_sd * local_sd * (1.0 if rng.random() < 0.5 else -1.0)
        dx[ev] += size
        truth.append(
            {
                "seq": int(first_print[ev]),
                "timestamp_ns": int(ev_ns[ev]),
                "jump_log_size": size,
                "jump_local_sd": k_sd,
                "local_sd": local_sd,
            }
        )
    x_eff = math.log(cfg.start_price) + np.cumsum(dx)
    stamp = np.repeat(ev_ns, per_event)
    logp = np.repeat(x_eff, per_event)
    if cfg.noise_bp > 0.0:
        logp = logp + cfg.noise_bp * 1e-4 * noise_rng.standard_normal(logp.shape[0])
    price = np.exp(logp)
    if cfg.tick > 0.0:
        price = np.maximum(np.round(price / cfg.tick) * cfg.tick, cfg.tick)
    size = 100 * rng.integers(1, 10, size=price.shape[0])
    return stamp, price, size.astype(np.int64), truth


def simulate_tape(
    cfg: SimulationConfig | None = None, params: Params | None = None
) -> SyntheticTape:
    """Generate a tape for every (symbol, day) of ``cfg`` with its truth file.

    Parameters
    ----------
    cfg
        Simulation parameters; defaults when omitted.
    params
        Session clock (open/close, time zone); defaults when omitted.

    Returns
    -------
    SyntheticTape
        ``trades`` (timestamp_ns, symbol, price, size) sorted by (symbol, time) and ``truth``
        (symbol, date, seq, timestamp_ns, jump_log_size, jump_local_sd, local_sd).
    """
    cfg = cfg or SimulationConfig()
    p = params or Params()
    # One independent stream per partition, and noise apart: changing the noise, the tick or
    # the number of days leaves every other partition's arrivals, prices and jumps unchanged.
    streams = iter(np.random.SeedSequence(cfg.seed).spawn(len(cfg.symbols) * len(cfg.days)))
    frames: list[pd.DataFrame] = []
    truth_rows: list[dict[str, Any]] = []
    for symbol in cfg.symbols:
        for day in cfg.days:
            dt.date.fromisoformat(day)  # validates the text
            open_ns, close_ns = session_bounds(day, p)
            main, noise = next(streams).spawn(2)
            stamp, price, size, truth = _simulate_day(
                np.random.default_rng(main), np.random.default_rng(noise), cfg, open_ns, close_ns
            )
            frames.append(
                pd.DataFrame(
                    {"timestamp_ns": stamp, "symbol": symbol, "price": price, "size": size}
                )
            )
            truth_rows.extend({"symbol": symbol, "date": day, **row} for row in truth)
    trades = pd.concat(frames, ignore_index=True)
    truth_cols = [
        "symbol",
        "date",
        "seq",
        "timestamp_ns",
        "jump_log_size",
        "jump_local_sd",
        "local_sd",
    ]
    truth_df = pd.DataFrame(truth_rows, columns=truth_cols)
    return SyntheticTape(trades, truth_df, cfg)


@dataclass(frozen=True)
class DetectionReport:
    """How a configuration's ``jump_detected`` flags compare with the planted jumps."""

    planted: int
    detected: int
    prints: int
    tested: int
    false_flags: int

    @property
    def power(self) -> float:
        """Share of planted jumps flagged at their own print."""
        return self.detected / self.planted if self.planted else math.nan

    @property
    def false_flag_rate(self) -> float:
        """False flags per print (every print, as in statistics.md 8.3)."""
        return self.false_flags / self.prints if self.prints else math.nan

    @property
    def false_flag_rate_tested(self) -> float:
        """False flags per print with a Lee-Mykland statistic."""
        return self.false_flags / self.tested if self.tested else math.nan

    def to_dict(self) -> dict[str, Any]:
        """Return counts and rates as a JSON-ready dict."""
        return {
            "planted": self.planted,
            "detected": self.detected,
            "power": self.power,
            "prints": self.prints,
            "tested": self.tested,
            "false_flags": self.false_flags,
            "false_flag_rate": self.false_flag_rate,
            "false_flag_rate_tested": self.false_flag_rate_tested,
        }


def evaluate_detection(trade_signals: pd.DataFrame, truth: pd.DataFrame) -> DetectionReport:
    """Compare per-print ``jump_detected`` with the truth file of a synthetic tape.

    A planted jump counts as detected when the print carrying it (same symbol, date and
    position in the partition) is flagged; every other flagged print is a false flag.

    Parameters
    ----------
    trade_signals
        ``compute_frames(...).trade_signals`` of the tape (partition order).
    truth
        ``SyntheticTape.truth``.

    Returns
    -------
    DetectionReport
        Counts; ``power`` and ``false_flag_rate`` derive from them.
    """
    ts = cast(
        "pd.DataFrame", trade_signals[["symbol", "date", "jump_detected", "lee_mykland_stat"]]
    )
    ts = ts.copy()
    ts["seq"] = ts.groupby(["symbol", "date"], sort=False).cumcount()
    flagged = ts[ts["jump_detected"].astype(bool)]
    flagged_keys = set(zip(flagged["symbol"], flagged["date"], flagged["seq"], strict=True))
    truth_keys = set(zip(truth["symbol"], truth["date"], truth["seq"].astype(int), strict=True))
    detected = len(flagged_keys & truth_keys)
    return DetectionReport(
        planted=len(truth_keys),
        detected=detected,
        prints=len(ts),
        tested=int(cast("pd.Series", ts["lee_mykland_stat"]).notna().sum()),
        false_flags=len(flagged_keys - truth_keys),
    )
