"""Signals: trades frame -> (symbol, New York date) partitions -> ``udx.kernels`` -> frames.

``assemble.compute_frames`` is the one entry point used by ``microstructure compute``, the
Dagster signal assets (DuckDB mode) and the tests; the Vertica UDx calls the same
``udx.kernels.symbol_day`` per partition, so the numbers cannot drift apart.
``provenance`` records the parameters, signal rule and kernel version with every result;
``synthetic`` generates tapes with a known truth for ``microstructure simulate``.
"""

# The file of each frame of ``assemble.SignalFrames`` in a directory: ``microstructure
# compute`` writes them and :mod:`pipeline.report` reads them. Here, not in ``assemble``, so
# that naming them imports no pandas.
OUTPUT_FILES: dict[str, str] = {
    "trade_signals": "trade_signals.parquet",
    "symbol_day_metrics": "symbol_day_metrics.parquet",
    "intensity_buckets": "intensity_buckets.parquet",
}
