"""``microstructure bench kernels``: every statistics kernel on a generated 1,000,000-trade day.

The day comes from the synthetic generator (Weibull-ACD arrivals with an intraday pattern,
U-shaped volatility, 2 prints per stamp on average, as on the XXX sample). After a JIT
warm-up (numba's on-disk cache makes it a load, not a compile, after the first run), each
kernel and the whole ``symbol_day`` contract are timed (median of ``--repeat`` runs), and
``arch`` (a bench-only dependency) fits the same zero-mean GARCH(1,1) on the same returns.
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

BENCH_DATE = "2024-03-04"
SAMPLE_DAY = "2018-01-02"


def _sample_returns() -> Any:
    """Tick returns of the shipped XXX sample's first day (regular hours)."""
    from pathlib import Path

    import pandas as pd

    from pipeline.signals.assemble import compute_frames

    path = (
        Path(__file__).resolve().parents[1] / "data" / "sample" / "trades_XXX_2018-01-02_03.csv.gz"
    )
    frames = compute_frames(pd.read_csv(path))
    day = frames.trade_signals[frames.trade_signals["date"] == SAMPLE_DAY]
    returns = cast("pd.Series", day["log_return"])
    return returns.to_numpy(dtype=float, na_value=float("nan"))[1:]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's options (``--json`` is added by the ``bench`` command)."""
    parser.add_argument("--trades", type=int, default=1_000_000, help="prints in the day")
    parser.add_argument(
        "--prints-per-event", type=float, default=2.0, help="mean prints per stamp (XXX: 2.1)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per kernel (median)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-arch", action="store_true", help="skip the arch comparison")


@dataclass(frozen=True)
class ArchFigures:
    """Our GARCH fit and arch's on the same returns: times, LLs (original units), status."""

    n: int
    ours_seconds: float
    ours_loglik: float
    arch_seconds: float
    arch_loglik: float
    arch_alpha: float
    arch_beta: float
    arch_status: int


def _arch_figures(y: Any, repeat: int) -> ArchFigures:
    """Time ``fit_garch`` and arch 8.0.0 on ``y`` (raises ImportError without arch)."""
    from arch import arch_model

    from udx.kernels import fit_garch

    def fit_arch() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = arch_model(y, mean="Zero", vol="GARCH", p=1, q=1, dist="normal", rescale=True)
            return model.fit(disp="off", show_warning=False)

    ours_s, ours = _median_seconds(lambda: fit_garch(y), repeat)
    arch_s, res = _median_seconds(fit_arch, repeat)
    n = int(y.shape[0])
    return ArchFigures(
        n=n,
        ours_seconds=ours_s,
        ours_loglik=float(ours.loglik),
        arch_seconds=arch_s,
        # arch reports the LL of the rescaled data: back to original units, as ours.
        arch_loglik=float(res.loglikelihood) + n * math.log(float(res.scale)),
        arch_alpha=float(res.params.iloc[1]),
        arch_beta=float(res.params.iloc[2]),
        arch_status=int(res.convergence_flag),
    )


def _median_seconds(func: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times: list[float] = []
    result: Any = None
    for _ in range(max(repeat, 1)):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print its figures (one JSON object with ``--json``)."""
    import numpy as np

    from pipeline.errors import ConfigError
    from pipeline.signals.synthetic import SimulationConfig, simulate_tape
    from udx.kernels import (
        NUMBA_ENABLED,
        Params,
        acd_day,
        bns_rolling,
        bns_test,
        fit_garch,
        garch_variance,
        intensity_counts,
        intensity_zscores,
        lee_mykland,
        lm_jumps,
        lm_xi,
        log_returns,
        previous_tick_returns,
        session_bounds,
        symbol_day,
    )

    if args.trades < 10_000:
        raise ConfigError(f"--trades is {args.trades} and must be at least 10,000")
    cfg = SimulationConfig(
        symbols=("BENCH",),
        days=(BENCH_DATE,),
        trades_per_day=args.trades,
        prints_per_event=args.prints_per_event,
        jumps_per_day=10,
        seed=args.seed,
    )
    tape = simulate_tape(cfg).trades
    ts = tape["timestamp_ns"].to_numpy()
    px = tape["price"].to_numpy()
    sz = tape["size"].to_numpy()
    n = ts.shape[0]
    p = Params()
    open_ns, close_ns = session_bounds(BENCH_DATE, p)

    # Warm-up: compile (or load from the numba cache) every kernel on a slice of the day.
    symbol_day(ts[:20_000], px[:20_000], sz[:20_000], p, date=BENCH_DATE)

    r, _ = log_returns(px)
    lm_stat, _ = lee_mykland(r, window=p.lm_window)
    garch = fit_garch(r[1:])
    step_ns = p.bns_grid_s * 1_000_000_000
    m_daily = (p.close_s - p.open_s) // p.bns_grid_s
    kernels: dict[str, Callable[[], Any]] = {
        "returns": lambda: log_returns(px),
        "lee_mykland": lambda: lee_mykland(r, window=p.lm_window),
        "lm_xi_and_flags": lambda: lm_jumps(lm_xi(lm_stat, n - 1), p.alpha),
        "bns_rolling": lambda: bns_rolling(r, window=p.bns_window),
        "bns_daily": lambda: bns_test(previous_tick_returns(ts, px, open_ns, step_ns, m_daily)),
        "garch_fit": lambda: fit_garch(r[1:]),
        "garch_variance": lambda: garch_variance(r, garch),
        "acd_diurnal_fits_filter": lambda: acd_day(
            ts, open_ns=open_ns, open_s=p.open_s, close_s=p.close_s
        ),
        "intensity": lambda: intensity_zscores(
            intensity_counts(ts, open_ns=open_ns, close_ns=close_ns)[1].counts
        ),
    }
    seconds: dict[str, float] = {}
    for name, func in kernels.items():
        seconds[name], _ = _median_seconds(func, args.repeat)
    contract_s, result = _median_seconds(
        lambda: symbol_day(ts, px, sz, p, date=BENCH_DATE), args.repeat
    )
    garch_fit = result.garch

    arch_fit: ArchFigures | None = None
    sample_fit: ArchFigures | None = None
    arch_note = ""
    if not args.no_arch:
        try:
            arch_fit = _arch_figures(r[1:], args.repeat)
            if not args.json:
                # The XXX sample day as well: like-for-like where arch's optimiser behaves.
                sample_fit = _arch_figures(_sample_returns(), args.repeat)
        except ImportError:
            arch_note = "arch is not installed (dev dependency); comparison skipped"
    arch_s = arch_fit.arch_seconds if arch_fit else None
    arch_ll = arch_fit.arch_loglik if arch_fit else None

    rates = {name: n / s for name, s in seconds.items()}
    out = {
        "contract_seconds": contract_s,
        "trades_per_s": rates,
        "garch_seconds": seconds["garch_fit"],
        "arch_garch_seconds": arch_s,
        "garch_loglik": garch_fit.loglik if garch_fit is not None else None,
        "arch_garch_loglik": arch_ll,
    }
    if args.json:
        print(json.dumps(out, sort_keys=False))
        return 0
    n_stamps = int(np.count_nonzero(np.diff(ts)) + 1)
    print(
        f"day: {n:,} prints, {n_stamps:,} distinct stamps, numba "
        f"{'on' if NUMBA_ENABLED else 'OFF (plain Python)'}, median of {args.repeat} runs"
    )
    for name, s in seconds.items():
        print(f"  {name:<26} {s * 1e3:9.2f} ms   {rates[name] / 1e6:9.2f} M trades/s")
    print(
        f"whole contract (symbol_day): {contract_s:.3f} s  ({n / contract_s / 1e6:.2f} M trades/s)"
    )
    if garch_fit is not None and garch_fit.fitted:
        print(
            f"GARCH ours: {seconds['garch_fit']:.3f} s, LL {garch_fit.loglik:.3f}, "
            f"alpha {garch_fit.alpha:.5f}, beta {garch_fit.beta:.5f}"
        )
    if arch_fit is not None:
        print(
            f"GARCH arch: {arch_fit.arch_seconds:.3f} s, LL {arch_fit.arch_loglik:.3f}, "
            f"alpha {arch_fit.arch_alpha:.5f}, beta {arch_fit.arch_beta:.5f}, SLSQP status "
            f"{arch_fit.arch_status}" + (" (converged)" if arch_fit.arch_status == 0 else "")
        )
        print(
            f"arch/ours time ratio: {arch_fit.arch_seconds / seconds['garch_fit']:.1f}x; "
            f"LL ours - arch: {garch_fit.loglik - arch_fit.arch_loglik:+.4f}"
            if garch_fit is not None
            else ""
        )
    if sample_fit is not None:
        print(
            f"XXX {SAMPLE_DAY} ({sample_fit.n:,} returns): ours "
            f"{sample_fit.ours_seconds * 1e3:.1f} ms, arch {sample_fit.arch_seconds * 1e3:.1f} ms "
            f"(status {sample_fit.arch_status}), ratio "
            f"{sample_fit.arch_seconds / sample_fit.ours_seconds:.1f}x, LL ours - arch "
            f"{sample_fit.ours_loglik - sample_fit.arch_loglik:+.4f}"
        )
    elif arch_note:
        print(arch_note)
    return 0
