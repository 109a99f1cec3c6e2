"""``microstructure simulate``: a synthetic tape with a known truth, and how well it is detected.

Writes ``DIR/trades.csv.gz`` (timestamp_ns, symbol, price, size: the input of
``microstructure compute``), ``DIR/truth.csv`` (one row per planted jump) and
``DIR/simulation.json`` (the generator's parameters), then, unless ``--no-evaluate``,
computes the signals with the chosen configuration and prints the detection power and the
false-flag rate (also written to ``DIR/evaluation.json``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError, DataError


def _csv(text: str) -> tuple[str, ...]:
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def register(sub: Any) -> None:
    """Add the ``simulate`` subcommand."""
    p = sub.add_parser(
        "simulate",
        help="generate a synthetic tape with planted jumps; report detection power and false flags",
        description=(
            "ACD(1,1)-Weibull arrivals with an intraday pattern, U-shaped volatility, jumps of a "
            "chosen size (in local per-trade sd) at known prints, optional i.i.d. noise and tick "
            "rounding. Defaults: 2 symbols x 3 days, ~16,000 prints per symbol-day, 3 jumps of "
            "8-15 sd per symbol-day, no noise."
        ),
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    p.add_argument("--symbols", type=_csv, default=None, help="comma-separated (SIMA,SIMB)")
    p.add_argument("--days", type=_csv, default=None, help="comma-separated YYYY-MM-DD")
    p.add_argument("--trades-per-day", type=int, default=None, help="mean prints per day")
    p.add_argument("--prints-per-event", type=float, default=None, help="mean prints per stamp")
    p.add_argument("--jumps-per-day", type=int, default=None)
    p.add_argument(
        "--jump-sd",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        default=None,
        help="jump size range in local per-trade sd (8 15)",
    )
    p.add_argument("--noise-bp", type=float, default=None, help="i.i.d. noise sd, basis points")
    p.add_argument("--tick", type=float, default=None, help="price rounding, e.g. 0.01 (0: none)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--lm-window", type=int, default=None, help="configuration: LM window K")
    p.add_argument("--alpha", type=float, default=None, help="configuration: significance")
    p.add_argument("--no-evaluate", action="store_true", help="only write the tape and truth")
    p.add_argument("--json", action="store_true", help="print the evaluation as one JSON object")
    p.set_defaults(func=run)


def _config(args: argparse.Namespace) -> Any:
    from pipeline.signals.synthetic import SimulationConfig

    fields: dict[str, Any] = {}
    for arg, name in (
        ("symbols", "symbols"),
        ("days", "days"),
        ("trades_per_day", "trades_per_day"),
        ("prints_per_event", "prints_per_event"),
        ("jumps_per_day", "jumps_per_day"),
        ("noise_bp", "noise_bp"),
        ("tick", "tick"),
        ("seed", "seed"),
    ):
        value = getattr(args, arg)
        if value is not None:
            fields[name] = value
    if args.jump_sd is not None:
        fields["jump_sd_low"], fields["jump_sd_high"] = args.jump_sd
    cfg = SimulationConfig(**fields)
    if cfg.trades_per_day < 100:
        raise ConfigError(f"--trades-per-day is {cfg.trades_per_day} and must be at least 100")
    if cfg.prints_per_event < 1.0:
        raise ConfigError(f"--prints-per-event is {cfg.prints_per_event} and must be >= 1")
    if not 0.0 < cfg.jump_sd_low <= cfg.jump_sd_high:
        raise ConfigError(f"--jump-sd {cfg.jump_sd_low} {cfg.jump_sd_high}: need 0 < LOW <= HIGH")
    if cfg.noise_bp < 0.0 or cfg.tick < 0.0 or cfg.jumps_per_day < 0:
        raise ConfigError("--noise-bp, --tick and --jumps-per-day must be >= 0")
    return cfg


def run(args: argparse.Namespace) -> int:
    """Handle ``microstructure simulate``."""
    from pipeline.signals.assemble import compute_frames
    from pipeline.signals.provenance import provenance
    from pipeline.signals.synthetic import evaluate_detection, simulate_tape
    from udx.kernels import Params

    cfg = _config(args)
    overrides: dict[str, Any] = {}
    if args.lm_window is not None:
        overrides["lm_window"] = args.lm_window
    if args.alpha is not None:
        overrides["alpha"] = args.alpha
    try:
        params = Params(**overrides)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    try:
        tape = simulate_tape(cfg, params)
    except ValueError as e:
        raise ConfigError(f"cannot simulate: {e}") from e
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    tape.trades.to_csv(out / "trades.csv.gz", index=False)
    tape.truth.to_csv(out / "truth.csv", index=False)
    (out / "simulation.json").write_text(json.dumps(cfg.to_dict(), indent=1, sort_keys=True))
    if args.no_evaluate:
        if not args.json:
            print(f"wrote {out}/trades.csv.gz ({len(tape.trades):,} prints), truth.csv "
                  f"({len(tape.truth)} jumps), simulation.json")  # fmt: skip
        return 0
    frames = compute_frames(tape.trades, params)
    report = evaluate_detection(frames.trade_signals, tape.truth)
    evaluation = {
        "simulation": cfg.to_dict(),
        "configuration": provenance(params),
        "detection": report.to_dict(),
    }
    (out / "evaluation.json").write_text(json.dumps(evaluation, indent=1, sort_keys=True))
    if args.json:
        print(json.dumps(report.to_dict(), sort_keys=True))
        return 0
    print(
        f"tape: {len(tape.trades):,} prints, {len(cfg.symbols)} symbol(s) x {len(cfg.days)} "
        f"day(s), {report.planted} planted jumps of {cfg.jump_sd_low:g}-{cfg.jump_sd_high:g} "
        f"local per-trade sd, noise {cfg.noise_bp:g} bp, tick {cfg.tick:g}"
    )
    print(f"configuration: Lee-Mykland K={params.lm_window}, alpha={params.alpha:g}")
    print(f"detection power: {report.detected}/{report.planted} = {report.power:.1%}")
    print(
        f"false flags: {report.false_flags:,} = {report.false_flag_rate:.3%} of prints "
        f"({report.false_flag_rate_tested:.3%} of the {report.tested:,} tested)"
    )
    print(f"wrote {out}/trades.csv.gz, truth.csv, simulation.json, evaluation.json")
    return 0
