"""Zero-mean GARCH(1,1) Gaussian QML with arch 8.0.0's conventions (statistics.md 2.4, 3).

arch rescales the data, backcasts the initial variance, picks a start from a grid and runs
SLSQP on a finite-difference gradient. Here the likelihood and its exact gradient come from
one compiled pass, so SLSQP needs one evaluation per step instead of four; the optimum (LL
and parameters) is what must match arch, not its path. No variance bounds are applied: on
these conventions they never bind (a filter without them matches arch to 6e-16).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize

from udx.kernels._checks import as_float64
from udx.kernels._compat_numba import jit
from udx.kernels._typing import Float64Array
from udx.kernels.config import (
    DEFAULT_GARCH_BOUNDARY_TOL,
    DEFAULT_GARCH_MIN_RETURNS,
    GARCH_OMEGA_BOUNDS,
    GARCH_SLSQP_FTOL,
    GARCH_SLSQP_MAXITER,
    GARCH_START_ALPHAS,
    GARCH_START_PERSISTENCE,
    LN2,
    LOG_2PI,
)

_NAN = math.nan


def garch_loglik_py(
    e: Float64Array, omega: float, alpha: float, beta: float, backcast: float
) -> float:
    """Match arch ``GARCH`` + ``Normal`` log-likelihood at given parameters and backcast.

    ``h_1 = omega + (alpha + beta) backcast``; returns ``-inf`` if any ``h_t <= 0`` or the
    sum is not finite.
    """
    h = backcast
    e2 = backcast
    ll = 0.0
    for t in range(e.shape[0]):
        h = omega + alpha * e2 + beta * h
        if not h > 0.0:
            return -math.inf
        x = e[t]
        e2 = x * x
        ll += math.log(h) + e2 / h
    ll = -0.5 * (ll + e.shape[0] * LOG_2PI)
    if not math.isfinite(ll):
        return -math.inf
    return ll


garch_loglik_nb = jit(garch_loglik_py)


def garch_loglik_grad_py(
    e: Float64Array,
    omega: float,
    alpha: float,
    beta: float,
    backcast: float,
    grad: Float64Array,
    exact: bool,
) -> float:
    r"""Match arch's GARCH(1,1) log-likelihood; also write its exact gradient into ``grad``.

    .. math::
        \partial h_t/\partial\theta = (1, e_{t-1}^2, h_{t-1})
            + \beta\,\partial h_{t-1}/\partial\theta,
        \qquad \partial LL/\partial\theta
            = -\tfrac12\sum (1/h_t - e_t^2/h_t^2)\,\partial h_t/\partial\theta

    with ``e_0^2 = h_0 = backcast`` and zero derivatives before ``t = 1``. With
    ``exact=False`` the sum of ``ln h_t`` is taken as the log of a running product kept in
    range by ``frexp`` every 8 steps (half the cost, relative error ~n eps); NaN is returned
    if that product ever leaves the float range, and the caller retries with ``exact=True``.
    """
    h = backcast
    e2 = backcast
    d_w = 0.0
    d_a = 0.0
    d_b = 0.0
    acc = 0.0
    g_w = 0.0
    g_a = 0.0
    g_b = 0.0
    prod = 1.0
    expo = 0
    ok = True
    for t in range(e.shape[0]):
        d_w = 1.0 + beta * d_w
        d_a = e2 + beta * d_a
        d_b = h + beta * d_b
        h = omega + alpha * e2 + beta * h
        if not h > 0.0:
            grad[0] = 0.0
            grad[1] = 0.0
            grad[2] = 0.0
            return -math.inf
        x = e[t]
        e2 = x * x
        inv = 1.0 / h
        if exact:
            acc += math.log(h) + e2 * inv
        else:
            acc += e2 * inv
            prod *= h
            if (t & 7) == 7:
                if not (prod > 0.0 and prod < math.inf):
                    ok = False
                mant, ex = math.frexp(prod)
                prod = mant
                expo += ex
        k = inv - e2 * inv * inv
        g_w += k * d_w
        g_a += k * d_a
        g_b += k * d_b
    if not exact:
        if not (ok and prod > 0.0 and prod < math.inf):
            return math.nan
        acc += math.log(prod) + expo * LN2
    grad[0] = -0.5 * g_w
    grad[1] = -0.5 * g_a
    grad[2] = -0.5 * g_b
    ll = -0.5 * (acc + e.shape[0] * LOG_2PI)
    if not math.isfinite(ll):
        return -math.inf
    return ll


garch_loglik_grad_nb = jit(garch_loglik_grad_py)


def garch_grid_loglik_py(
    e: Float64Array, starts: Float64Array, backcast: float, out: Float64Array
) -> None:
    """Match arch ``GARCH.starting_values``' grid log-likelihoods, all rows in one pass.

    ``starts`` has one ``(omega, alpha, beta)`` row per candidate; the sum of ``ln h_t`` is
    the log of a running product per row (see :func:`garch_loglik_grad_py`); a row whose
    product leaves the float range gets NaN (the caller re-evaluates it exactly).
    """
    k = starts.shape[0]
    w = starts[:, 0].copy()
    a = starts[:, 1].copy()
    b = starts[:, 2].copy()
    h = np.full(k, backcast)
    prod = np.ones(k)
    expo = np.zeros(k, dtype=np.int64)
    acc = np.zeros(k)
    ok = np.ones(k, dtype=np.bool_)
    e2 = backcast
    n = e.shape[0]
    for t in range(n):
        x = e[t]
        x2 = x * x
        for j in range(k):
            hj = w[j] + a[j] * e2 + b[j] * h[j]
            h[j] = hj
            prod[j] *= hj
            acc[j] += x2 / hj
        if (t & 7) == 7:
            for j in range(k):
                if not (prod[j] > 0.0 and prod[j] < math.inf):
                    ok[j] = False
                mant, ex = math.frexp(prod[j])
                prod[j] = mant
                expo[j] += ex
        e2 = x2
    for j in range(k):
        if ok[j] and prod[j] > 0.0 and prod[j] < math.inf:
            out[j] = -0.5 * (acc[j] + math.log(prod[j]) + expo[j] * LN2 + n * LOG_2PI)
        else:
            out[j] = math.nan


garch_grid_loglik_nb = jit(garch_grid_loglik_py)


def garch_filter_py(
    r: Float64Array,
    scale: float,
    omega: float,
    alpha: float,
    beta: float,
    out: Float64Array,
    state: Float64Array,
) -> None:
    """Match the reference ``garch_sigma2``: conditional variance per print, original units.

    ``r`` are per-print returns (NaN on the day's first print, skipped), fitted on
    ``e = scale r``; ``omega`` is in scaled units. State ``[h_{t-1}, e_{t-1}^2]`` (scaled),
    both equal to the backcast at the day's start, is updated in place.
    """
    h = state[0]
    e2 = state[1]
    s2 = scale * scale
    for i in range(r.shape[0]):
        x = r[i]
        if x != x:
            out[i] = _NAN
            continue
        h = omega + alpha * e2 + beta * h
        out[i] = h / s2
        e = scale * x
        e2 = e * e
    state[0] = h
    state[1] = e2


garch_filter_nb = jit(garch_filter_py)


def garch_loglik_grad(
    e: Float64Array, omega: float, alpha: float, beta: float, backcast: float, grad: Float64Array
) -> float:
    """Match arch's GARCH(1,1) log-likelihood with its gradient: fast pass, exact on overflow."""
    with np.errstate(over="ignore", invalid="ignore"):  # the Python twin's overflow is handled
        ll = garch_loglik_grad_nb(e, omega, alpha, beta, backcast, grad, False)
    if math.isnan(ll):
        ll = garch_loglik_grad_nb(e, omega, alpha, beta, backcast, grad, True)
    return float(ll)


def arch_scale(y: Float64Array) -> float:
    """Match arch ``_check_scale``: the power of 10 that puts ``var(s y)`` in [0.1, 10000)."""
    orig = float(np.var(y))
    scale = orig
    rescale = 1.0
    while not 0.1 <= scale < 10000.0 and scale > 0:
        if scale < 1.0:
            rescale *= 10
        else:
            rescale /= 10
        scale = orig * rescale**2
    return rescale


def arch_backcast(e: Float64Array) -> float:
    """Match arch ``GARCH.backcast``: 0.94-EWMA weights on the first ``min(75, n)`` ``e^2``."""
    tau = min(75, e.shape[0])
    w = 0.94 ** np.arange(tau)
    w = w / sum(w)
    return float(np.sum((e[:tau] ** 2.0) * w))


@dataclass(frozen=True)
class GarchFit:
    """A zero-mean GARCH(1,1) fit of one symbol-day; every float NaN when not fitted.

    ``omega``, ``loglik`` and ``uncond_var`` are in original units; ``reason`` says why the
    fit is missing or flagged (``None`` when interior and converged).
    """

    n: int
    scale: float
    omega: float
    alpha: float
    beta: float
    loglik: float
    loglik_scaled: float
    omega_scaled: float
    backcast_scaled: float
    converged: bool | None
    status: int | None
    message: str
    at_boundary: bool | None
    uncond_var: float
    reason: str | None

    @property
    def fitted(self) -> bool:
        """True when parameters exist."""
        return self.converged is not None

    @property
    def persistence(self) -> float:
        """``alpha + beta``."""
        return self.alpha + self.beta


def _no_fit(n: int, reason: str, scale: float = _NAN) -> GarchFit:
    return GarchFit(
        n, scale, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN, None, None, "", None, _NAN, reason
    )


def garch_start(e: Float64Array, backcast: float) -> tuple[float, float, float]:
    """Match arch ``GARCH.starting_values``: best LL over the (alpha, persistence) grid.

    Ties keep the first grid point (alpha outer, persistence inner), as ``np.argmax`` does.
    """
    m2 = float(np.mean(e**2))
    starts = np.array(
        [[(1.0 - q) * m2, a0, q - a0] for a0 in GARCH_START_ALPHAS for q in GARCH_START_PERSISTENCE]
    )
    lls = np.empty(starts.shape[0])
    with np.errstate(over="ignore", invalid="ignore"):  # overflowing rows are redone exactly
        garch_grid_loglik_nb(e, starts, backcast, lls)
    for j in np.flatnonzero(np.isnan(lls)):
        lls[j] = garch_loglik_nb(e, starts[j, 0], starts[j, 1], starts[j, 2], backcast)
    lls[np.isnan(lls)] = -math.inf
    best = int(np.argmax(lls))
    return float(starts[best, 0]), float(starts[best, 1]), float(starts[best, 2])


def fit_garch(
    returns: npt.ArrayLike,
    *,
    min_returns: int = DEFAULT_GARCH_MIN_RETURNS,
    boundary_tol: float = DEFAULT_GARCH_BOUNDARY_TOL,
) -> GarchFit:
    r"""Match arch 8.0.0 ``arch_model(y, mean="Zero", vol="GARCH", p=1, q=1).fit()`` (garch.json).

    .. math::
        h_t = \omega + \alpha e_{t-1}^2 + \beta h_{t-1}, \qquad
        LL = -\tfrac12\sum_{t=1}^n [\ln 2\pi + \ln h_t + e_t^2/h_t]

    on ``e = s y`` (arch's power-of-10 scale), backcast start, bounds
    ``omega in [1e-8 m2, 10 m2]``, ``alpha, beta in [0, 1]``, ``alpha + beta <= 1``, SLSQP.

    Parameters
    ----------
    returns
        The n tick returns of the day (finite; zeros included).
    min_returns
        Below this n no fit is attempted.
    boundary_tol
        ``alpha + beta >= 1 - boundary_tol`` flags the integrated (boundary) case.

    Returns
    -------
    GarchFit
        Parameters in original units, LL, convergence and boundary flags.
    """
    y = as_float64(returns, "returns")
    n = y.shape[0]
    if n < min_returns:
        return _no_fit(n, f"GARCH: {n} returns < {min_returns}")
    if not np.isfinite(y).all():
        return _no_fit(n, "GARCH: non-finite returns")
    if float(np.var(y)) == 0.0:
        return _no_fit(n, "GARCH: constant prices, var(returns) = 0")
    s = arch_scale(y)
    e = np.ascontiguousarray(s * y)
    bc = arch_backcast(e)
    m2 = float(np.mean(np.abs(e) ** 2.0))
    x0 = np.array(garch_start(e, bc))
    grad = np.zeros(3)

    def objective(theta: Float64Array) -> tuple[float, Float64Array]:
        # -LL / n: gradients of order 1 suit SLSQP's identity start Hessian (half the
        # evaluations of arch's unscaled objective); ftol is set on this scale.
        ll = garch_loglik_grad(e, theta[0], theta[1], theta[2], bc, grad)
        if not math.isfinite(ll):  # pragma: no cover - bounds keep h_t > 0 and finite
            return 1e300, np.zeros(3)
        return -ll / n, -grad / n

    bounds = [(GARCH_OMEGA_BOUNDS[0] * m2, GARCH_OMEGA_BOUNDS[1] * m2), (0.0, 1.0), (0.0, 1.0)]
    cons = {
        "type": "ineq",
        "fun": lambda th: 1.0 - th[1] - th[2],
        "jac": lambda th: np.array([0.0, -1.0, -1.0]),
    }
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Values in x were outside bounds", RuntimeWarning)
        opt = minimize(
            objective,
            x0,
            jac=True,
            method="SLSQP",
            bounds=bounds,
            constraints=[cons],
            options={"ftol": GARCH_SLSQP_FTOL, "maxiter": GARCH_SLSQP_MAXITER},
        )
    omega, alpha, beta = (float(v) for v in opt.x)
    ll_scaled = garch_loglik_nb(e, omega, alpha, beta, bc)
    if not math.isfinite(ll_scaled):  # pragma: no cover - defensive, as above
        return _no_fit(n, "GARCH: no finite log-likelihood at the optimum", s)
    persistence = alpha + beta
    at_boundary = persistence >= 1.0 - boundary_tol
    converged = bool(opt.status == 0)
    notes: list[str] = []
    if not converged:
        notes.append(
            f"GARCH: optimiser did not converge (SLSQP status {opt.status}: {opt.message})"
        )
    if at_boundary:
        notes.append(
            f"GARCH: alpha + beta = {persistence:.6f}, on the alpha + beta = 1 boundary "
            "(integrated; unconditional variance undefined)"
        )
    uncond = omega / (s * s) / (1.0 - persistence) if persistence < 1.0 else _NAN
    return GarchFit(
        n=n,
        scale=s,
        omega=omega / (s * s),
        alpha=alpha,
        beta=beta,
        loglik=ll_scaled + n * math.log(s),
        loglik_scaled=ll_scaled,
        omega_scaled=omega,
        backcast_scaled=bc,
        converged=converged,
        status=int(opt.status),
        message=str(opt.message),
        at_boundary=at_boundary,
        uncond_var=uncond,
        reason="; ".join(notes) or None,
    )


@dataclass(frozen=True)
class GarchFilterState:
    """Resumable state of :func:`garch_variance`: ``[h_{t-1}, e_{t-1}^2]`` in scaled units."""

    values: Float64Array

    @classmethod
    def initial(cls, backcast_scaled: float) -> GarchFilterState:
        """State at the start of a day: both entries equal the backcast."""
        return cls(np.array([backcast_scaled, backcast_scaled]))


def garch_variance(
    returns: npt.ArrayLike, fit: GarchFit, state: GarchFilterState | None = None
) -> tuple[Float64Array, GarchFilterState]:
    """Match the reference ``garch_sigma2``: conditional variance of each print's return.

    Parameters
    ----------
    returns
        Per-print returns of the day (NaN on the first print).
    fit
        The day's fit (all NaN output when it has no parameters).
    state
        State returned by the previous batch of the same day; ``None`` at the day's start.

    Returns
    -------
    sigma2 : ndarray
        ``h_t`` in original units per print (NaN on the first print or without a fit).
    state : GarchFilterState
        State to pass with the next batch.
    """
    r = as_float64(returns, "returns")
    if not fit.fitted:
        return np.full_like(r, _NAN), state or GarchFilterState(np.array([_NAN, _NAN]))
    st = (state or GarchFilterState.initial(fit.backcast_scaled)).values.copy()
    out = np.empty_like(r)
    garch_filter_nb(r, fit.scale, fit.omega_scaled, fit.alpha, fit.beta, out, st)
    return out, GarchFilterState(st)
