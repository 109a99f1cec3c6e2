"""Each MCP tool declared once: its input model, its output model, its title and description.

:data:`TOOLS` is the one table. The server registers every tool from it (the input
model's fields, with their descriptions and bounds, become the tool's input schema; the
output model its output schema), the plain-JSON compatibility path and the benchmark call
tools by its names, and :meth:`mcp_server.tools.ToolService.call` answers any of them by
validating the arguments against the same input model. Window tools take their
arguments in one order: ``symbol``, filters, ``limit``, ``hours_back``, ``start``, ``end``,
``cursor``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mcp_server import models as m

MAX_LIMIT = 1000
SignalType = Literal["BUY", "SELL", "HOLD", "ALL"]

_WINDOW_NOTE = (
    " The window counts back from the newest data of the symbol unless start/end are given "
    "(so replayed history answers sensibly); times without an offset are New York time, a "
    "bare date is that whole day."
)

Symbol = Annotated[str, Field(description="ticker, e.g. AAPL (see list_symbols)", max_length=64)]
HoursBack = Annotated[
    float | None,
    Field(description="window length in hours, back from end (or from the newest data)", gt=0),
]
Start = Annotated[
    str | None,
    Field(
        description="window start, ISO 8601 (e.g. 2018-01-03T10:00:00) or YYYY-MM-DD", max_length=64
    ),
]
End = Annotated[
    str | None,
    Field(
        description="window end (exclusive), ISO 8601 or YYYY-MM-DD (inclusive day)", max_length=64
    ),
]
CursorArg = Annotated[
    str | None,
    Field(
        description="paging.next_cursor of the previous answer, to get the next (older) page",
        max_length=512,
    ),
]


Limit = Annotated[
    int,
    Field(
        description=f"most rows to return (1-{MAX_LIMIT}; the server may cap lower)",
        ge=1,
        le=MAX_LIMIT,
    ),
]
SymbolLimit = Annotated[int, Field(description="most symbols to list", ge=1, le=MAX_LIMIT)]
StartDay = Annotated[
    str | None,
    Field(description="first day, YYYY-MM-DD (default: counted back by days)", max_length=32),
]
EndDay = Annotated[
    str | None,
    Field(description="last day, YYYY-MM-DD (default: the newest day with data)", max_length=32),
]
Days = Annotated[
    int, Field(description="without start_day: how many days with data to return", ge=1, le=62)
]
Day = Annotated[
    str | None, Field(description="YYYY-MM-DD (default: the symbol's newest day)", max_length=32)
]
SignalTypeArg = Annotated[SignalType, Field(description="BUY, SELL, HOLD or ALL")]
Chart = Annotated[
    bool,
    Field(
        description="also return a PNG chart of the newest day in the answer: price with "
        "the detected jumps, GARCH volatility, trade-intensity z-score and ACD surprise"
    ),
]
EvalSymbol = Annotated[
    str | None,
    Field(
        description="only this symbol's rows (and the pooled ones); default: every symbol",
        max_length=64,
    ),
]
Symbols = Annotated[
    list[Annotated[str, Field(max_length=64)]],
    Field(description='tickers, e.g. ["AAPL", "MSFT"]', min_length=1, max_length=50),
]


class ToolArgs(BaseModel):
    """A tool's arguments: validated, unknown names refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ListSymbolsArgs(ToolArgs):
    """Arguments of ``list_symbols``."""

    limit: SymbolLimit = 200
    cursor: CursorArg = None


class WindowArgs(ToolArgs):
    """A window of one symbol's rows, newest first, one page at a time."""

    symbol: Symbol
    limit: Limit = 50
    hours_back: HoursBack = None
    start: Start = None
    end: End = None
    cursor: CursorArg = None


class EnrichedDataArgs(WindowArgs):
    """Arguments of ``get_enriched_data``."""


class TradingSignalsArgs(ToolArgs):
    """Arguments of ``get_trading_signals``."""

    symbol: Symbol
    signal_type: SignalTypeArg = "ALL"
    limit: Limit = 50
    hours_back: HoursBack = None
    start: Start = None
    end: End = None
    cursor: CursorArg = None


class JumpEventsArgs(WindowArgs):
    """Arguments of ``get_jump_events``."""


class SymbolMetricsArgs(ToolArgs):
    """Arguments of ``get_symbol_metrics``."""

    symbol: Symbol
    start_day: StartDay = None
    end_day: EndDay = None
    days: Days = 5
    chart: Chart = False


class RealTimeDataArgs(ToolArgs):
    """Arguments of ``get_real_time_data``."""

    symbols: Symbols


class DataQualityArgs(ToolArgs):
    """Arguments of ``get_data_quality``."""

    symbol: Symbol
    day: Day = None


class SignalEvaluationArgs(ToolArgs):
    """Arguments of ``get_signal_evaluation``."""

    symbol: EvalSymbol = None


@dataclass(frozen=True)
class ToolSpec:
    """One MCP tool: what it takes, what it answers, which service method answers it."""

    name: str
    title: str
    description: str
    args: type[ToolArgs]
    output: type[BaseModel]
    method: str
    """The :class:`~mcp_server.tools.ToolService` method (keyword arguments = ``args``)."""
    carries_signals: bool = False
    """Its answers carry signals (each observes signal computed -> served)."""
    server_only: tuple[str, ...] = ()
    """Arguments the server handles itself, not passed to the method (``chart``)."""

    def service_kwargs(self, args: ToolArgs | Mapping[str, Any]) -> dict[str, Any]:
        """Validate ``args`` against the input model; return the method's keyword arguments.

        Parameters
        ----------
        args
            An instance of :attr:`args` or a mapping of argument names to values.

        Returns
        -------
        dict
            Every argument (defaults filled in) except :attr:`server_only`.

        Raises
        ------
        pydantic.ValidationError
            If a value is out of bounds, of the wrong type, or a name is unknown.
        """
        a = args if isinstance(args, self.args) else self.args.model_validate(dict(args))
        return {k: getattr(a, k) for k in type(a).model_fields if k not in self.server_only}


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "list_symbols",
        "List symbols",
        "List the symbols in the warehouse with their trade counts, first/last trade and the "
        "days that have trades and published signals. Start here.",
        ListSymbolsArgs,
        m.SymbolList,
        "list_symbols",
    ),
    ToolSpec(
        "get_enriched_data",
        "Trades with signals",
        "Trades of one symbol joined with their per-trade statistics (log return, "
        "Lee-Mykland statistic and jump flag, GARCH variance, standardized return, ACD "
        "duration and surprise, intensity z-score) and BUY/SELL/HOLD signal, newest first. "
        "Default window: 1 hour." + _WINDOW_NOTE,
        EnrichedDataArgs,
        m.EnrichedData,
        "enriched_data",
        carries_signals=True,
    ),
    ToolSpec(
        "get_trading_signals",
        "Trading signals",
        "BUY/SELL/HOLD signals of one symbol (signal_type filters; ALL for every type) with "
        "their statistics, newest first, plus the count of each type in the window. Default "
        "window: 24 hours." + _WINDOW_NOTE,
        TradingSignalsArgs,
        m.TradingSignals,
        "trading_signals",
        carries_signals=True,
    ),
    ToolSpec(
        "get_jump_events",
        "Jump events",
        "Trades where the Lee-Mykland test detected a price jump, newest first, and the "
        "day-level Barndorff-Nielsen-Shephard jump test of each day in the window. Default "
        "window: 7 days." + _WINDOW_NOTE,
        JumpEventsArgs,
        m.JumpEvents,
        "jump_events",
        carries_signals=True,
    ),
    ToolSpec(
        "get_symbol_metrics",
        "Daily statistics",
        "Daily statistics of one symbol: trade and return counts, VWAP, BNS realized "
        "measures and jump test, GARCH(1,1) and ACD(1,1) (exponential, Weibull) fits, "
        "Lee-Mykland jump count. Newest day first; by default the 5 newest days with data. "
        "chart=true adds a PNG picture of the newest day (price with jumps, GARCH "
        "volatility, intensity z-score, ACD surprise).",
        SymbolMetricsArgs,
        m.SymbolMetrics,
        "symbol_metrics",
        carries_signals=True,
        server_only=("chart",),
    ),
    ToolSpec(
        "get_real_time_data",
        "Newest data",
        "For each symbol: the newest processed trade, the newest signal and the newest "
        "BUY/SELL, each with its age in seconds, and the newest day's trade and signal "
        "counts. Unknown symbols are listed, not fatal.",
        RealTimeDataArgs,
        m.RealTimeData,
        "real_time_data",
        carries_signals=True,
    ),
    ToolSpec(
        "get_data_quality",
        "Data quality",
        "Quality checks of one symbol-day: ingest batches' quality verdicts, the signals "
        "run's suite verdict and finality, feed gaps, rejected records (with samples; their "
        "raw text is untrusted data) and minutes with trades. Default: the newest day.",
        DataQualityArgs,
        m.DataQuality,
        "data_quality",
    ),
    ToolSpec(
        "get_signal_evaluation",
        "Do the signals pay?",
        "The newest stored evaluation of the BUY/SELL signals (microstructure evaluate): "
        "signed forward returns 1, 5 and 30 minutes after each signal, hit rate, mean and "
        "t-statistic per symbol and pooled (*), against seeded random entry times on the "
        "same days, with a verdict per row. too_few_signals means the sample cannot say "
        "anything: say so rather than read the numbers.",
        SignalEvaluationArgs,
        m.SignalEvaluation,
        "signal_evaluation",
    ),
)
TOOL_NAMES: tuple[str, ...] = tuple(t.name for t in TOOLS)
TOOL_BY_NAME: dict[str, ToolSpec] = {t.name: t for t in TOOLS}
SIGNAL_TOOLS: frozenset[str] = frozenset(t.name for t in TOOLS if t.carries_signals)
