"""Vertica Python UDx: every statistic of a (symbol, day) partition via ``udx.kernels``.

SQL (``udx/vertica/install.sql`` registers it; ``udx/vertica/signals.sql`` uses it)::

    SELECT batch_microstructure(timestamp_ns, symbol, price, size, exchange)
           OVER (PARTITION BY symbol, trade_date ORDER BY timestamp_ns)
    FROM market_data WHERE in_regular_hours;

Three transform functions share this file, one per contract table, each computing
``udx.kernels.symbol_day`` on the whole partition:

- ``BatchMicrostructureFactory`` -> ``batch_microstructure``: one row per regular-hours
  print (``trading_signals``). An overload with two more arguments,
  ``(..., kafka_partition INT, kafka_offset INT)``, passes the trade's lineage through,
  which is how ``enriched_market_data`` joins signals back to trades.
- ``BatchMicrostructureMetricsFactory`` -> ``batch_microstructure_metrics``: one row per
  partition (``symbol_day_metrics``).
- ``BatchMicrostructureIntensityFactory`` -> ``batch_microstructure_intensity``: one row per
  one-minute bucket (``trade_intensity``).

How it runs: Vertica calls ``processPartition`` once per partition, in a fenced Python
process (always, for Python UDxs). The reader starts on row 0; the partition is copied into
numpy arrays once, the kernels compute vectorised (numba when importable and not disabled
with ``MICRO_DISABLE_NUMBA=1``, else the kernels' plain-Python twins, same numbers), and
rows are written with every column set before ``next()``. No maths happens row by row.

Bad input never fails the partition: a row with a NULL stamp, symbol, price or size, a
non-finite or non-positive price or a negative size is written with every statistic NULL
and ``reason`` saying why; the valid rows are computed without it (as the loader would
have rejected it). A partition the kernels refuse as a whole (e.g. stamps on two local
dates) is written the same way with the kernel's message.

This file is loaded by path (``CREATE LIBRARY ... AS '<path>'``) into Vertica's bundled
interpreter; ``udx.kernels`` comes from the ``DEPENDS`` site-packages built by
``build_depends.sh``. It imports nothing from ``pipeline``. Outside Vertica the tests drive
it through a stand-in ``vertica_sdk`` (``tests/support/vertica_sdk``).
"""

from __future__ import annotations

import math
import os
import tempfile
from typing import Any, Callable

# numba writes its cache next to the package by default; inside Vertica the DEPENDS copy is
# read-only, so point it at a writable place before the kernels import numba.
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), "micro-numba-cache"))

import numpy as np
import vertica_sdk  # pyright: ignore[reportMissingImports] - exists only in Vertica
from udx.kernels import KERNEL_VERSION, KernelInputError, Params, symbol_day
from udx.kernels.schema import SYMBOL_DAY_METRIC_COLUMNS

# Argument positions of the SQL signature.
ARG_TIMESTAMP, ARG_SYMBOL, ARG_PRICE, ARG_SIZE, ARG_EXCHANGE = 0, 1, 2, 3, 4
ARG_KAFKA_PARTITION, ARG_KAFKA_OFFSET = 5, 6

DATE_WIDTH = 10  # YYYY-MM-DD; signals.sql casts it to DATE
SIGNAL_WIDTH = 4  # BUY / SELL / HOLD
VERSION_WIDTH = 32
REASON_WIDTH = 1024
NOTES_WIDTH = 4096

# USING PARAMETERS the functions accept (all optional; the specification's defaults else).
INT_PARAMS: tuple[str, ...] = ("lm_window", "bns_window", "intensity_window")
FLOAT_PARAMS: tuple[str, ...] = ("alpha",)

# Per-trade output: the original design's columns first, then the contract's others.
TRADE_FLOATS: tuple[str, ...] = (
    "standardized_return",
    "lee_mykland_stat",
    "bns_stat",
    "trade_intensity_zscore",
    "acd_surprise",
    "conditional_duration",
)
TRADE_MORE_FLOATS: tuple[str, ...] = ("log_return", "lm_xi", "garch_sigma2")


# ---------------------------------------------------------------------------------------------
# Reading a partition: one pass, into numpy


class Partition:
    """The input rows of one partition as arrays, with the rows that cannot be computed."""

    def __init__(self, n_args: int) -> None:
        self.timestamp_ns: list[int] = []
        self.symbol: list[str | None] = []
        self.price: list[float] = []
        self.size: list[int] = []
        self.lineage: list[tuple[int | None, int | None]] = []
        self.raw_timestamp: list[int | None] = []
        self.raw_price: list[float | None] = []
        self.raw_size: list[int | None] = []
        self.reasons: list[str | None] = []
        self.n_args = n_args

    def read(self, reader: Any) -> None:
        """Consume every row of ``reader`` (which starts on row 0)."""
        lineage = self.n_args > ARG_KAFKA_OFFSET
        while True:
            ts = None if reader.isNull(ARG_TIMESTAMP) else reader.getInt(ARG_TIMESTAMP)
            sym = None if reader.isNull(ARG_SYMBOL) else reader.getString(ARG_SYMBOL)
            px = None if reader.isNull(ARG_PRICE) else reader.getFloat(ARG_PRICE)
            sz = None if reader.isNull(ARG_SIZE) else reader.getInt(ARG_SIZE)
            if lineage:
                kp = (
                    None
                    if reader.isNull(ARG_KAFKA_PARTITION)
                    else reader.getInt(ARG_KAFKA_PARTITION)
                )
                ko = None if reader.isNull(ARG_KAFKA_OFFSET) else reader.getInt(ARG_KAFKA_OFFSET)
            else:
                kp = ko = None
            reason = _row_problem(ts, sym, px, sz)
            self.raw_timestamp.append(ts)
            self.raw_price.append(px)
            self.raw_size.append(sz)
            self.symbol.append(sym)
            self.lineage.append((kp, ko))
            self.reasons.append(reason)
            if not reader.next():
                break

    def valid_rows(self) -> list[int]:
        """Return the input positions that the kernels can take."""
        return [i for i, r in enumerate(self.reasons) if r is None]

    def arrays(self, rows: list[int]) -> tuple[Any, Any, Any]:
        """Return ``timestamp_ns``, ``price``, ``size`` of ``rows`` as contiguous arrays."""
        ts = np.array([self.raw_timestamp[i] for i in rows], dtype=np.int64)
        px = np.array([self.raw_price[i] for i in rows], dtype=np.float64)
        sz = np.array([self.raw_size[i] for i in rows], dtype=np.int64)
        return ts, px, sz

    def partition_symbol(self) -> str | None:
        """Return the partition's symbol (the first non-null one)."""
        return next((s for s in self.symbol if s is not None), None)


def _row_problem(ts: int | None, sym: str | None, px: float | None, sz: int | None) -> str | None:
    """Return why a row cannot enter the kernels, or None (statistics.md 1: invalid rows)."""
    if ts is None:
        return "timestamp_ns is NULL"
    if sym is None:
        return "symbol is NULL"
    if px is None:
        return "price is NULL"
    if not math.isfinite(px):
        return f"price is {px!r} and must be finite"
    if px <= 0.0:
        return f"price is {px!r} and must be > 0"
    if sz is None:
        return "size is NULL"
    if sz < 0:
        return f"size is {sz} and must be >= 0"
    return None


def _params(server_interface: Any) -> Params:
    reader = server_interface.getParamReader()
    values: dict[str, Any] = {}
    for name in INT_PARAMS:
        if reader.containsParameter(name):
            values[name] = reader.getInt(name)
    for name in FLOAT_PARAMS:
        if reader.containsParameter(name):
            values[name] = reader.getFloat(name)
    return Params(**values)


def _declare_params(parameter_types: Any) -> None:
    for name in INT_PARAMS:
        parameter_types.addInt(name)
    for name in FLOAT_PARAMS:
        parameter_types.addFloat(name)


class Computed:
    """``symbol_day`` on the valid rows of a partition, or why it could not run."""

    def __init__(self, part: Partition, params: Params) -> None:
        self.part = part
        self.rows = part.valid_rows()
        self.result: Any = None
        self.error: str | None = None
        if not self.rows:
            self.error = "no valid rows in the partition"
            return
        ts, px, sz = part.arrays(self.rows)
        try:
            self.result = symbol_day(ts, px, sz, params)
        except KernelInputError as e:
            self.error = f"partition refused by the kernels: {e}"

    @property
    def n_invalid(self) -> int:
        """Return how many input rows were left out."""
        return len(self.part.reasons) - len(self.rows)


# ---------------------------------------------------------------------------------------------
# Writing


def _set_float(writer: Any, col: int, value: Any) -> None:
    if value is None:
        writer.setNull(col)
        return
    f = float(value)
    if math.isnan(f):
        writer.setNull(col)
    else:
        writer.setFloat(col, f)


def _set_int(writer: Any, col: int, value: Any) -> None:
    if value is None:
        writer.setNull(col)
    else:
        writer.setInt(col, int(value))


def _set_bool(writer: Any, col: int, value: Any) -> None:
    if value is None:
        writer.setNull(col)
    else:
        writer.setBool(col, bool(value))


def _set_str(writer: Any, col: int, value: str | None, width: int) -> None:
    if value is None:
        writer.setNull(col)
    else:
        writer.setString(col, _fit(value, width))


def _fit(text: str, width: int) -> str:
    """Cut ``text`` to ``width`` UTF-8 bytes (reasons and notes are free text)."""
    data = text.encode("utf-8")
    if len(data) <= width:
        return text
    return data[: width - 3].decode("utf-8", "ignore") + "..."


# ---------------------------------------------------------------------------------------------
# Per trade: batch_microstructure


class BatchMicrostructure(vertica_sdk.TransformFunction):  # pyright: ignore[reportUntypedBaseClass]
    """One output row per regular-hours print, in partition order; bad rows with a reason."""

    def setup(self, server_interface: Any, col_types: Any) -> None:
        """Read ``USING PARAMETERS`` once."""
        self.params = _params(server_interface)
        self.n_args = col_types.getColumnCount()

    def processPartition(self, server_interface: Any, reader: Any, writer: Any) -> None:
        """Compute the partition and write its rows."""
        part = Partition(self.n_args)
        part.read(reader)
        done = Computed(part, self.params)
        lineage = self.n_args > ARG_KAFKA_OFFSET
        if done.result is not None:
            res = done.result
            t = res.trades
            cols: list[Any] = [t[name] for name in TRADE_FLOATS]
            more: list[Any] = [t[name] for name in TRADE_MORE_FLOATS]
            date = res.date
            for seq in range(len(res.index)):
                row = done.rows[int(res.index[seq])]
                writer.setInt(0, int(t["timestamp_ns"][seq]))
                writer.setString(1, part.symbol[row])
                for j, values in enumerate(cols):
                    _set_float(writer, 2 + j, values[seq])
                writer.setBool(8, bool(t["jump_detected"][seq]))
                writer.setString(9, str(t["trading_signal"][seq]))
                writer.setFloat(10, float(t["price"][seq]))
                writer.setInt(11, int(t["size"][seq]))
                writer.setString(12, date)
                writer.setInt(13, seq)
                for j, values in enumerate(more):
                    _set_float(writer, 14 + j, values[seq])
                writer.setString(17, KERNEL_VERSION)
                writer.setNull(18)
                if lineage:
                    kp, ko = part.lineage[row]
                    _set_int(writer, 19, kp)
                    _set_int(writer, 20, ko)
                writer.next()
        skipped = (
            range(len(part.reasons))
            if done.result is None
            else [i for i, r in enumerate(part.reasons) if r is not None]
        )
        for row in skipped:
            self._write_null_row(writer, part, row, part.reasons[row] or done.error or "", lineage)
        if done.n_invalid or done.error:
            detail = f"; {done.error}" if done.error else ""
            server_interface.log(
                f"batch_microstructure: {part.partition_symbol()}: "
                f"{done.n_invalid} rows left out{detail}"
            )

    @staticmethod
    def _write_null_row(writer: Any, part: Partition, row: int, reason: str, lineage: bool) -> None:
        _set_int(writer, 0, part.raw_timestamp[row])
        _set_str(writer, 1, part.symbol[row], 1 << 16)
        for j in range(len(TRADE_FLOATS)):
            writer.setNull(2 + j)
        writer.setNull(8)
        writer.setNull(9)
        _set_float(writer, 10, part.raw_price[row])
        _set_int(writer, 11, part.raw_size[row])
        for col in range(12, 17):
            writer.setNull(col)
        writer.setString(17, KERNEL_VERSION)
        writer.setString(18, _fit(reason, REASON_WIDTH))
        if lineage:
            kp, ko = part.lineage[row]
            _set_int(writer, 19, kp)
            _set_int(writer, 20, ko)
        writer.next()


def _add_arguments(arg_types: Any, lineage: bool) -> None:
    arg_types.addInt()  # timestamp_ns
    arg_types.addVarchar()  # symbol
    arg_types.addFloat()  # price
    arg_types.addInt()  # size
    arg_types.addVarchar()  # exchange (accepted for the original signature; not used)
    if lineage:
        arg_types.addInt()  # kafka_partition
        arg_types.addInt()  # kafka_offset


class BatchMicrostructureFactory(vertica_sdk.TransformFunctionFactory):  # pyright: ignore[reportUntypedBaseClass]
    """The per-trade function ``batch_microstructure(timestamp_ns, symbol, price, size, exchange)``.

    Argument types INT, VARCHAR, FLOAT, INT, VARCHAR; ``exchange`` is accepted for the
    original signature and not used by the statistics.
    """

    lineage = False

    def getPrototype(self, server_interface: Any, arg_types: Any, return_type: Any) -> None:
        """Declare the arguments and the unsized output types."""
        _add_arguments(arg_types, self.lineage)
        return_type.addInt()  # timestamp_ns
        return_type.addVarchar()  # symbol
        for _ in TRADE_FLOATS:
            return_type.addFloat()
        return_type.addBool()  # jump_detected
        return_type.addVarchar()  # trading_signal
        return_type.addFloat()  # price
        return_type.addInt()  # size
        return_type.addVarchar()  # date
        return_type.addInt()  # seq
        for _ in TRADE_MORE_FLOATS:
            return_type.addFloat()
        return_type.addVarchar()  # kernel_version
        return_type.addVarchar()  # reason
        if self.lineage:
            return_type.addInt()
            return_type.addInt()

    def getReturnType(self, server_interface: Any, arg_types: Any, return_type: Any) -> None:
        """Name and size the output columns (required for a UDTF)."""
        return_type.addInt("timestamp_ns")
        return_type.addColumn(arg_types.getColumnType(ARG_SYMBOL), "symbol")
        for name in TRADE_FLOATS:
            return_type.addFloat(name)
        return_type.addBool("jump_detected")
        return_type.addVarchar(SIGNAL_WIDTH, "trading_signal")
        return_type.addFloat("price")
        return_type.addInt("size")
        return_type.addVarchar(DATE_WIDTH, "date")
        return_type.addInt("seq")
        for name in TRADE_MORE_FLOATS:
            return_type.addFloat(name)
        return_type.addVarchar(VERSION_WIDTH, "kernel_version")
        return_type.addVarchar(REASON_WIDTH, "reason")
        if self.lineage:
            return_type.addInt("kafka_partition")
            return_type.addInt("kafka_offset")

    def getParameterType(self, server_interface: Any, parameter_types: Any) -> None:
        """Declare the optional ``USING PARAMETERS``."""
        _declare_params(parameter_types)

    def createTransformFunction(self, server_interface: Any) -> BatchMicrostructure:
        """Return the function object (one per query and node; reused across partitions)."""
        return BatchMicrostructure()


class BatchMicrostructureLineageFactory(BatchMicrostructureFactory):
    """The overload ``batch_microstructure(..., kafka_partition INT, kafka_offset INT)``."""

    lineage = True


# ---------------------------------------------------------------------------------------------
# Per symbol-day: batch_microstructure_metrics

METRIC_COLUMNS = [c for c in SYMBOL_DAY_METRIC_COLUMNS if c.name not in ("symbol", "date")]


class BatchMicrostructureMetrics(vertica_sdk.TransformFunction):  # pyright: ignore[reportUntypedBaseClass]
    """One output row per partition: the symbol-day metrics."""

    def setup(self, server_interface: Any, col_types: Any) -> None:
        """Read ``USING PARAMETERS`` once."""
        self.params = _params(server_interface)
        self.n_args = col_types.getColumnCount()

    def processPartition(self, server_interface: Any, reader: Any, writer: Any) -> None:
        """Compute the partition and write its one row."""
        part = Partition(self.n_args)
        part.read(reader)
        done = Computed(part, self.params)
        metrics: dict[str, Any] = done.result.metrics if done.result is not None else {}
        _set_str(writer, 0, part.partition_symbol(), 1 << 16)
        _set_str(writer, 1, metrics.get("date"), DATE_WIDTH)
        for j, col in enumerate(METRIC_COLUMNS):
            value = metrics.get(col.name)
            out = 2 + j
            if col.name == "notes":
                _set_str(writer, out, value, NOTES_WIDTH)
            elif col.dtype == "int64":
                _set_int(writer, out, value)
            elif col.dtype == "bool":
                _set_bool(writer, out, value)
            else:
                _set_float(writer, out, value)
        base = 2 + len(METRIC_COLUMNS)
        writer.setString(base, KERNEL_VERSION)
        writer.setInt(base + 1, done.n_invalid)
        reason = done.error
        if reason is None and done.n_invalid:
            reason = f"{done.n_invalid} rows left out: {_first_reason(part)}"
        _set_str(writer, base + 2, reason, REASON_WIDTH)
        writer.next()


def _first_reason(part: Partition) -> str:
    return next((r for r in part.reasons if r is not None), "")


class BatchMicrostructureMetricsFactory(vertica_sdk.TransformFunctionFactory):  # pyright: ignore[reportUntypedBaseClass]
    """``batch_microstructure_metrics(timestamp_ns, symbol, price, size, exchange)``."""

    def getPrototype(self, server_interface: Any, arg_types: Any, return_type: Any) -> None:
        """Declare the arguments and the unsized output types."""
        _add_arguments(arg_types, False)
        return_type.addVarchar()  # symbol
        return_type.addVarchar()  # date
        for col in METRIC_COLUMNS:
            _unsized(return_type, col.dtype, col.name == "notes")
        return_type.addVarchar()  # kernel_version
        return_type.addInt()  # n_rows_left_out
        return_type.addVarchar()  # reason

    def getReturnType(self, server_interface: Any, arg_types: Any, return_type: Any) -> None:
        """Name and size the output columns."""
        return_type.addColumn(arg_types.getColumnType(ARG_SYMBOL), "symbol")
        return_type.addVarchar(DATE_WIDTH, "date")
        for col in METRIC_COLUMNS:
            _sized(return_type, col.dtype, col.name, NOTES_WIDTH)
        return_type.addVarchar(VERSION_WIDTH, "kernel_version")
        return_type.addInt("n_rows_left_out")
        return_type.addVarchar(REASON_WIDTH, "reason")

    def getParameterType(self, server_interface: Any, parameter_types: Any) -> None:
        """Declare the optional ``USING PARAMETERS``."""
        _declare_params(parameter_types)

    def createTransformFunction(self, server_interface: Any) -> BatchMicrostructureMetrics:
        """Return the function object."""
        return BatchMicrostructureMetrics()


def _unsized(types: Any, dtype: str, is_text: bool) -> None:
    adders: dict[str, Callable[[], None]] = {
        "int64": types.addInt,
        "bool": types.addBool,
        "float64": types.addFloat,
        "string": types.addVarchar,
    }
    (types.addVarchar if is_text else adders[dtype])()


def _sized(types: Any, dtype: str, name: str, width: int) -> None:
    if dtype == "string":
        types.addVarchar(width, name)
    elif dtype == "int64":
        types.addInt(name)
    elif dtype == "bool":
        types.addBool(name)
    else:
        types.addFloat(name)


# ---------------------------------------------------------------------------------------------
# Per bucket: batch_microstructure_intensity


class BatchMicrostructureIntensity(vertica_sdk.TransformFunction):  # pyright: ignore[reportUntypedBaseClass]
    """One output row per one-minute bucket of the session (empty buckets included)."""

    def setup(self, server_interface: Any, col_types: Any) -> None:
        """Read ``USING PARAMETERS`` once."""
        self.params = _params(server_interface)
        self.n_args = col_types.getColumnCount()

    def processPartition(self, server_interface: Any, reader: Any, writer: Any) -> None:
        """Compute the partition and write its buckets."""
        part = Partition(self.n_args)
        part.read(reader)
        done = Computed(part, self.params)
        if done.result is None:
            server_interface.log(f"batch_microstructure_intensity: {done.error}")
            return
        symbol = part.partition_symbol()
        ib = done.result.intensity
        for b in range(len(ib["bucket"])):
            writer.setString(0, symbol)
            writer.setString(1, done.result.date)
            writer.setInt(2, int(ib["bucket"][b]))
            writer.setInt(3, int(ib["bucket_start_ns"][b]))
            writer.setInt(4, int(ib["count"][b]))
            _set_float(writer, 5, ib["z"][b])
            writer.setString(6, KERNEL_VERSION)
            writer.next()


class BatchMicrostructureIntensityFactory(vertica_sdk.TransformFunctionFactory):  # pyright: ignore[reportUntypedBaseClass]
    """``batch_microstructure_intensity(timestamp_ns, symbol, price, size, exchange)``."""

    def getPrototype(self, server_interface: Any, arg_types: Any, return_type: Any) -> None:
        """Declare the arguments and the unsized output types."""
        _add_arguments(arg_types, False)
        return_type.addVarchar()  # symbol
        return_type.addVarchar()  # date
        return_type.addInt()  # bucket
        return_type.addInt()  # bucket_start_ns
        return_type.addInt()  # count
        return_type.addFloat()  # z
        return_type.addVarchar()  # kernel_version

    def getReturnType(self, server_interface: Any, arg_types: Any, return_type: Any) -> None:
        """Name and size the output columns."""
        return_type.addColumn(arg_types.getColumnType(ARG_SYMBOL), "symbol")
        return_type.addVarchar(DATE_WIDTH, "date")
        return_type.addInt("bucket")
        return_type.addInt("bucket_start_ns")
        return_type.addInt("count")
        return_type.addFloat("z")
        return_type.addVarchar(VERSION_WIDTH, "kernel_version")

    def getParameterType(self, server_interface: Any, parameter_types: Any) -> None:
        """Declare the optional ``USING PARAMETERS``."""
        _declare_params(parameter_types)

    def createTransformFunction(self, server_interface: Any) -> BatchMicrostructureIntensity:
        """Return the function object."""
        return BatchMicrostructureIntensity()
