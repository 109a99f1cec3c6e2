"""``build_server(settings)``: the MCP server object with its tools, routes and lifespan.

The lifespan starts the warehouse's serving port (:func:`pipeline.serving.open_serving`:
DuckDB's serving store, kept by a materializer process, or Vertica directly), so the
server answers ``initialize`` at once and clients never hit their start-up timeout.
Every tool is read-only and idempotent, returns structured content that conforms to its
output model plus a compact text block (summary, CSV rows, one JSON line of provenance),
and is audited and measured. Cheap calls (a page, a catalog lookup: bounded by their
``limit``) run on the event loop; calls whose cost grows with a window or a day (charts,
long type-filtered windows, every Vertica query) run in worker threads, at most
``heavy_concurrency`` at once, under a time limit, so one client cannot stall the others.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import gc
import inspect
import logging
import time
import typing
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

import anyio.to_thread
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.types import CallToolResult, ContentBlock, ImageContent, TextContent, ToolAnnotations
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mcp_server import telemetry as tm
from mcp_server.live_resource import LIVE_URI, read_live, watch
from mcp_server.settings import McpSettings, token_digest
from mcp_server.tools import Answer, ToolService, iso_utc
from mcp_server.toolspec import SIGNAL_TOOLS, TOOL_NAMES, TOOLS, ToolSpec
from pipeline.serving import open_serving
from pipeline.serving.port import (
    SCAN_BUDGET,
    NeedsWorker,
    ServingBusy,
    ServingError,
    ServingPort,
    ServingTimeout,
    ServingUnavailable,
    ServingView,
)

logger = logging.getLogger("microstructure.mcp")

SERVER_NAME = "microstructure"
SERVER_VERSION = "0.1.0"
INSTRUCTIONS = (
    "Market-microstructure analytics over a tick warehouse (trades, jump statistics, "
    "volatility and duration fits, BUY/SELL/HOLD signals). Start with list_symbols. Time "
    "windows count back from each symbol's newest data unless start/end are given (times "
    "without an offset are New York exchange time). Answers are capped: when paging.truncated "
    "is true, pass paging.next_cursor back or narrow the window. Every answer carries "
    "provenance (as-of time, data lag, kernel version and parameters) and completeness (feed "
    "gaps, rejects, quality verdicts); mention incompleteness when you use the data."
)

READ_ONLY = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)

# Set by _run when a call reached a tool; the middleware audits calls that never did
# (arguments failing the input schema, unknown tools).
_AUDITED: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar(
    "mcp_audited", default=None
)

# Who is calling, for transports that carry no MCP request context (plain HTTP requests).
CURRENT_CLIENT: contextvars.ContextVar[tuple[str, str | None, str] | None] = contextvars.ContextVar(
    "mcp_client", default=None
)

ContentHook = Callable[[Mapping[str, Any]], Sequence[ContentBlock]]
"""Extra content blocks for a tool's answer (e.g. a PNG chart for ``get_symbol_metrics``)."""


class StaticTokenVerifier:
    """Bearer tokens from settings (``MCP_AUTH_TOKEN``, the tokens file), one client id each.

    Only SHA-256 digests of the tokens are held; comparing digests in a dict is not a
    timing oracle for the token itself.
    """

    def __init__(self, digests: Mapping[str, str]) -> None:
        self._digests = dict(digests)

    def client_id(self, token: str) -> str | None:
        """Return the client id of ``token``, None if unknown."""
        return self._digests.get(token_digest(token))

    async def verify_token(self, token: str) -> AccessToken | None:
        """Return the access info of a known token (the SDK's ``TokenVerifier`` protocol)."""
        client = self.client_id(token)
        if client is None:
            return None
        return AccessToken(token="redacted", client_id=client, scopes=[])  # noqa: S106


@dataclass
class Runtime:
    """What the tools share: settings, the serving port and the tool logic."""

    settings: McpSettings
    port: ServingPort
    service: ToolService
    content_hooks: Mapping[str, ContentHook] = field(default_factory=dict[str, ContentHook])
    started_ns: int = field(default_factory=time.time_ns)
    _limiter: anyio.CapacityLimiter | None = None

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        """The bound on concurrent heavy calls (created in the serving event loop)."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.settings.heavy_concurrency)
        return self._limiter

    def health(self) -> dict[str, Any]:
        """Return the ``/health`` document: states, ages, counts; never a path or error text."""
        h = self.port.health()
        now = time.time_ns()
        view: ServingView | None = None
        if h.status == "ok":
            try:
                view = self.port.view()
            except ServingError:
                view = None
        cat = None if view is None else view.catalog
        newest = None if cat is None else cat.newest_trade_ns
        as_of = None if view is None else view.as_of_ns
        doc: dict[str, Any] = {
            "status": h.status,
            "backend": h.backend,
            "warehouse_reachable": h.status == "ok",
            "as_of": iso_utc(as_of),
            "as_of_age_s": None if as_of is None else round((now - as_of) / 1e9, 3),
            "stale": view is not None and view.stale_reason is not None,
            "newest_trade": iso_utc(newest),
            "data_lag_s": None if newest is None else round((now - newest) / 1e9, 3),
            "last_load": None if cat is None else iso_utc(cat.last_commit_ns),
            "symbols": None if cat is None else len(cat.symbols),
            "error": h.error_code,
            "progress": h.progress,
            "refreshes": h.refreshes,
            "failures": h.failures,
            "uptime_s": round((now - self.started_ns) / 1e9, 1),
        }
        tm.SNAPSHOT_REFRESHES.set(h.refreshes)
        tm.SNAPSHOT_FAILURES.set(h.failures)
        if as_of is not None:
            tm.SNAPSHOT_AGE.set(doc["as_of_age_s"])
        if newest is not None and as_of is not None:
            tm.DATA_LAG.set((as_of - newest) / 1e9)
        return doc


def _who(ctx: Context | None) -> tuple[str, str | None, str]:
    """Return (client id, remote address, transport) of the current call."""
    current = CURRENT_CLIENT.get()
    if current is not None:
        return current
    token = get_access_token()
    request: Any = None
    if ctx is not None:
        try:
            request = ctx.request_context.request
        except ValueError:
            request = None
    if isinstance(request, Request):
        state = request.scope.get("state") or {}
        client = state.get("mcp_client") or (token.client_id if token else "anonymous")
        remote = request.client.host if request.client else None
        return str(client), remote, "http"
    if token is not None:
        return token.client_id, None, "http"
    return "local", None, "stdio"


def _preload() -> None:
    """Import now what the first answers would import on the event loop.

    pyarrow converts arrays through pandas and ``pyarrow.compute``, which it imports on
    first use: done by a request, that stalls every client for 0.1-0.4 s and leaves
    35,000 objects outside :func:`gc.freeze`, walked by every full collection after.
    """
    import pandas  # noqa: F401
    import pyarrow.compute  # noqa: F401


def build_server(
    settings: McpSettings,
    *,
    port: ServingPort | None = None,
    content_hooks: Mapping[str, ContentHook] | None = None,
) -> MCPServer[Runtime]:
    """Build the MCP server: tools, ``/health``, ``/metrics`` and the port's lifespan.

    Parameters
    ----------
    settings
        Caps, auth, time limits and the warehouse URL.
    port
        The serving port; by default the one :func:`~pipeline.serving.open_serving`
        opens for ``settings.warehouse_url``.
    content_hooks
        Per tool name, a function adding content blocks to its answers (the seam for a
        PNG report of ``get_symbol_metrics``).

    Returns
    -------
    MCPServer
        Serve it with ``run_stdio_async()``, ``streamable_http_app(...)`` (see
        :mod:`mcp_server.http`) or the in-memory ``Client(server)``.
    """
    if port is None:
        port = open_serving(settings.warehouse_url, **settings.serving_options())
    runtime = Runtime(
        settings=settings,
        port=port,
        service=ToolService(
            max_rows=settings.max_rows,
            max_bytes=settings.max_bytes,
            cursor_secret=settings.cursor_secret,
        ),
        content_hooks=dict(content_hooks or {}),
    )

    bus = InMemorySubscriptionBus()

    @asynccontextmanager
    async def lifespan(_server: MCPServer[Runtime]) -> AsyncIterator[Runtime]:
        runtime.port.start()
        # The live resources' change notices (mcp_server/live_resource.py).
        watcher = asyncio.create_task(watch(runtime.port, bus, settings.live_watch_s))
        _preload()
        # Everything loaded so far (the SDK, pydantic schemas, pandas: about 140,000
        # objects) lives as long as the process: move it out of the cyclic collector's
        # reach, or every full collection walks it and stalls all requests for 15-35 ms.
        gc.freeze()
        try:
            yield runtime
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            runtime.port.close()

    verifier = StaticTokenVerifier(settings.tokens) if settings.auth_required else None
    server: MCPServer[Runtime] = MCPServer(
        SERVER_NAME,
        title="Market microstructure analytics",
        instructions=INSTRUCTIONS,
        version=SERVER_VERSION,
        lifespan=lifespan,
        subscriptions=bus,
        token_verifier=verifier,
        # Static bearer tokens: no authorization server to advertise, so no RFC 9728
        # metadata (resource_server_url None) and nothing for a client to discover.
        auth=AuthSettings(issuer_url=settings.base_url, resource_server_url=None)  # type: ignore[arg-type]
        if verifier is not None
        else None,
        log_level=settings.log_level if settings.log_level in _LEVELS else "INFO",  # type: ignore[arg-type]
    )
    _register_tools(server, runtime)

    @server.resource(
        LIVE_URI,
        name="live_signal",
        title="A symbol's newest live signal",
        description="The live path's newest provisional signal of the symbol (with the batch's "
        "value of the same trade once a signals run has it) and the live BUY/SELL count of its "
        "newest day. Listen for this URI (subscriptions/listen) to be told when a new live "
        "BUY or SELL arrives.",
        mime_type="application/json",
    )
    async def live_resource(symbol: str) -> str:
        return read_live(await _view(runtime), symbol)

    server.middleware.append(_audit_rejected_calls)
    _RUNTIMES[server] = runtime

    @server.custom_route("/health", methods=["GET"])
    async def health(_request: Request) -> Response:
        doc = runtime.health()
        return JSONResponse(doc, status_code=200 if doc["status"] == "ok" else 503)

    @server.custom_route("/metrics", methods=["GET"])
    async def metrics(_request: Request) -> Response:
        runtime.health()  # refresh the gauges
        body, content_type = tm.render_metrics()
        return Response(body, media_type=content_type)

    return server


_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_RUNTIMES: weakref.WeakKeyDictionary[MCPServer[Runtime], Runtime] = weakref.WeakKeyDictionary()


def runtime_of(server: MCPServer[Runtime]) -> Runtime:
    """Return what a server built by :func:`build_server` shares between its tools."""
    return _RUNTIMES[server]


async def _audit_rejected_calls(
    ctx: ServerRequestContext[Any, Any], call_next: CallNext
) -> HandlerResult:
    """Audit ``tools/call`` requests refused before any tool ran (bad arguments, unknown tool)."""
    if ctx.method != "tools/call":
        return await call_next(ctx)
    flag = [False]
    token = _AUDITED.set(flag)
    t0 = time.perf_counter()
    try:
        result = await call_next(ctx)
    finally:
        _AUDITED.reset(token)
    if not flag[0]:
        params = ctx.params or {}
        name = str(params.get("name", ""))[:64]
        raw_args = params.get("arguments")
        record_rejection(
            tool=name,
            arguments=raw_args if isinstance(raw_args, dict) else {},
            client=_who_from_request(ctx.request),
            error=_error_text(result),
            ms=(time.perf_counter() - t0) * 1e3,
        )
    return result


def _error_text(result: HandlerResult) -> str:
    content: Any = None
    if isinstance(result, CallToolResult):
        content = [c.model_dump() for c in result.content]
    elif isinstance(result, dict):
        content = result.get("content")
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return str(content[0].get("text", "rejected"))
    return "rejected"


def _who_from_request(request: Any) -> tuple[str, str | None, str]:
    if isinstance(request, Request):
        state = request.scope.get("state") or {}
        token = get_access_token()
        client = state.get("mcp_client") or (token.client_id if token else "anonymous")
        return str(client), request.client.host if request.client else None, "http"
    return "local", None, "stdio"


def record_rejection(
    *,
    tool: str,
    arguments: Mapping[str, Any],
    client: tuple[str, str | None, str],
    error: str,
    ms: float,
) -> None:
    """Count and audit a call refused before its tool ran."""
    label = tool if tool in TOOL_NAMES else "unknown"
    tm.TOOL_CALLS.labels(label, "rejected").inc()
    tm.audit(
        client=client[0],
        remote=client[1],
        transport=client[2],
        tool=tool,
        arguments=arguments,
        outcome="rejected",
        rows=0,
        nbytes=0,
        ms=ms,
        query_ms=0.0,
        error=error,
    )


async def _view(runtime: Runtime) -> ServingView:
    """Return the newest view; wait for the first one in a thread, never on the loop."""
    if runtime.port.ready():
        return runtime.port.view()
    return await anyio.to_thread.run_sync(runtime.port.wait_ready, runtime.settings.wait_first_s)


def _unbounded(work: Callable[[ServingView], Answer], view: ServingView) -> Answer:
    token = SCAN_BUDGET.set(None)
    try:
        return work(view)
    finally:
        SCAN_BUDGET.reset(token)


async def run_work(runtime: Runtime, work: Callable[[ServingView], Answer]) -> Answer:
    """Answer one call: on the loop if its scans fit the budget, else in a worker thread.

    Raises
    ------
    TimeoutError
        If the worker did not finish within the query time limit (it is abandoned; the
        concurrency limit bounds how many such workers exist).
    """
    view = await _view(runtime)
    if runtime.port.backend == "duckdb":
        token = SCAN_BUDGET.set([runtime.settings.inline_scan_rows])
        try:
            return work(view)
        except NeedsWorker:
            pass
        finally:
            SCAN_BUDGET.reset(token)
    with anyio.fail_after(runtime.settings.query_timeout_s):
        return await anyio.to_thread.run_sync(
            _unbounded, work, view, limiter=runtime.limiter, abandon_on_cancel=True
        )


async def _run(
    runtime: Runtime,
    tool: str,
    ctx: Context | None,
    arguments: dict[str, Any],
    work: Callable[[ServingView], Answer],
) -> CallToolResult:
    """Run one tool call with auditing, metrics, time limit and error mapping."""
    t0 = time.perf_counter()
    client, remote, transport = _who(ctx)
    outcome, rows, nbytes, query_s, error = "ok", 0, 0, 0.0, None
    audited = _AUDITED.get()
    if audited is not None:
        audited[0] = True
    try:
        answer = await run_work(runtime, work)
        content: list[ContentBlock] = [TextContent(type="text", text=answer.text)]
        hook = runtime.content_hooks.get(tool)
        if hook is not None:
            content.extend(hook(answer.data))
        rows, nbytes, query_s = answer.rows, len(answer.text), answer.query_s
        if tool in SIGNAL_TOOLS and rows:
            _observe_signal_to_served(answer.data)
        return CallToolResult(content=content, structured_content=answer.data)
    except ToolError as e:
        outcome, error = "rejected", str(e)
        raise
    except (TimeoutError, ServingTimeout):
        limit = runtime.settings.query_timeout_s
        outcome, error = "timeout", f"over {limit:g} s"
        raise ToolError(
            f"the query took longer than {limit:g} s and was abandoned; narrow the window or "
            "the day range and ask again"
        ) from None
    except (ServingBusy, ServingUnavailable) as e:
        # The log gets the whole text; the client the message written for clients (no
        # file names, no hosts, no internal errors).
        outcome, error = "busy", str(e)
        raise ToolError(e.client_message) from None
    except ServingError as e:
        ref = uuid.uuid4().hex[:12]
        outcome, error = "error", f"{type(e).__name__} (reference {ref}): {e}"
        logger.warning("tool %s: %s (reference %s)", tool, e, ref)
        raise ToolError(f"{e.client_message} (reference {ref})") from None
    except Exception as e:
        ref = uuid.uuid4().hex[:12]
        outcome, error = "error", f"{type(e).__name__} (reference {ref})"
        logger.exception("tool %s failed (reference %s)", tool, ref)
        raise ToolError(
            f"internal error (reference {ref}); the server log has the details"
        ) from None
    finally:
        elapsed = time.perf_counter() - t0
        tm.TOOL_CALLS.labels(tool, outcome).inc()
        tm.TOOL_SECONDS.labels(tool).observe(elapsed)
        if outcome == "ok":
            tm.QUERY_SECONDS.labels(tool).observe(query_s)
            tm.ROWS.labels(tool).inc(rows)
        tm.audit(
            client=client,
            remote=remote,
            transport=transport,
            tool=tool,
            arguments=arguments,
            outcome=outcome,
            rows=rows,
            nbytes=nbytes,
            ms=elapsed * 1e3,
            query_ms=query_s * 1e3,
            error=error,
        )


def _observe_signal_to_served(data: Mapping[str, Any]) -> None:
    """Observe the age of the newest signals run behind an answer, as it is sent."""
    runs = (data.get("provenance") or {}).get("signal_runs") or []
    stamps = [r.get("computed") for r in runs if r.get("computed")]
    if not stamps:
        return
    newest = max(datetime.fromisoformat(str(t)) for t in stamps)
    tm.SIGNAL_TO_SERVED.observe(max(time.time() - newest.timestamp(), 0.0))


async def _chart(runtime: Runtime, symbol: str, answer: Mapping[str, Any]) -> list[ContentBlock]:
    """Draw the newest day of a ``get_symbol_metrics`` answer as a PNG (``chart=true``).

    Reading the day's rows and drawing them (about a second of matplotlib) run in a worker
    thread under the heavy-work limit and the time limit, so other calls keep being
    answered and a burst of charts queues instead of piling up.
    """
    from pipeline.report import render_symbol_day, symbol_day_from_rows

    days = [str(r["date"]) for r in answer.get("rows") or []]
    if not days:
        return [TextContent(type="text", text="chart: no day with statistics in the answer")]
    day = max(days)
    view = await _view(runtime)

    def draw() -> Any:
        token = SCAN_BUDGET.set(None)
        try:
            rows, metrics = runtime.service.chart_rows(view, symbol, day)
            if not rows:
                return None
            data = symbol_day_from_rows(str(answer.get("symbol") or symbol), day, rows, metrics)
            return render_symbol_day(data, dpi=72)
        finally:
            SCAN_BUDGET.reset(token)

    t0 = time.perf_counter()
    try:
        with anyio.fail_after(runtime.settings.query_timeout_s):
            rendered = await anyio.to_thread.run_sync(
                draw, limiter=runtime.limiter, abandon_on_cancel=True
            )
    except TimeoutError:
        return [
            TextContent(
                type="text",
                text=f"chart unavailable: drawing took longer than "
                f"{runtime.settings.query_timeout_s:g} s",
            )
        ]
    except Exception:  # the answer stands without its picture; say why in the log
        ref = uuid.uuid4().hex[:12]
        logger.exception("chart of %s %s failed (reference %s)", symbol, day, ref)
        return [TextContent(type="text", text=f"chart unavailable (reference {ref})")]
    if rendered is None:
        return [TextContent(type="text", text=f"chart: no signal rows for {symbol} on {day}")]
    tm.CHART_SECONDS.observe(time.perf_counter() - t0)
    return [
        ImageContent(
            type="image",
            data=base64.b64encode(rendered.png).decode(),
            mime_type="image/png",
        ),
        TextContent(type="text", text=f"chart: {rendered.title}"),
    ]


def _register_tools(server: MCPServer[Runtime], runtime: Runtime) -> None:
    """Register every tool of :data:`~mcp_server.toolspec.TOOLS`."""
    for spec in TOOLS:
        server.add_tool(
            _tool_function(runtime, spec),
            name=spec.name,
            title=spec.title,
            description=spec.description,
            annotations=READ_ONLY,
        )


def _tool_function(runtime: Runtime, spec: ToolSpec) -> Callable[..., Any]:
    """Return the function the SDK calls for ``spec``, its signature made from the input model.

    The SDK derives a tool's input schema from its function's signature and its output
    schema from the return annotation; both come from the table here, so a tool's
    arguments are written once (its input model) and cannot drift between the schema, the
    audit log and the service call.
    """
    svc = runtime.service

    async def tool(ctx: Context | None = None, **arguments: Any) -> CallToolResult:
        # The SDK has validated ``arguments`` against this very signature (made from the
        # input model below), so the model is built without validating them a second time.
        args = spec.args.model_construct(**arguments)
        kwargs = spec.service_kwargs(args)
        result = await _run(
            runtime,
            spec.name,
            ctx,
            arguments,
            lambda view: getattr(svc, spec.method)(view, **kwargs),
        )
        if getattr(args, "chart", False) and result.structured_content is not None:
            result.content.extend(
                await _chart(runtime, kwargs["symbol"], result.structured_content)
            )
        return result

    hints = typing.get_type_hints(spec.args, include_extras=True)
    params = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=hints[name],
            default=inspect.Parameter.empty if field.is_required() else field.default,
        )
        for name, field in spec.args.model_fields.items()
    ]
    params.append(
        inspect.Parameter(
            "ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context | None, default=None
        )
    )
    returns = Annotated[CallToolResult, spec.output]
    tool.__name__ = tool.__qualname__ = spec.name
    tool.__signature__ = inspect.Signature(params, return_annotation=returns)  # type: ignore[attr-defined]
    tool.__annotations__ = {p.name: p.annotation for p in params} | {"return": returns}
    return tool
