"""Diurnally adjusted ACD(1,1) duration model, exponential QML and Weibull (statistics.md 2.6, 4).

Durations are between distinct stamps (prints sharing a stamp are one event). The diurnal
factor is a natural cubic spline through the mean duration of each 30-minute bin, evaluated
at the start of each spell; the adjusted durations feed the ACD fits, whose likelihoods and
exact gradients come from one compiled pass each.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import digamma

from udx.kernels._checks import as_float64, as_int64
from udx.kernels._compat_numba import jit
from udx.kernels._typing import Float64Array, Int64Array
from udx.kernels.config import (
    ACD_GAMMA_BOUNDS,
    ACD_MAX_PERSISTENCE,
    ACD_OMEGA_BOUNDS,
    ACD_SLSQP_FTOL,
    ACD_SLSQP_MAXITER,
    ACD_START_ALPHAS,
    ACD_START_GAMMA,
    ACD_START_PERSISTENCE,
    DEFAULT_ACD_BOUNDARY_TOL,
    LN2,
    NS_PER_S,
)

_NAN = math.nan


# --- diurnal factor ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Diurnal:
    """Diurnal factor of one symbol-day: knots, spline second derivatives, end slopes, floor."""

    knots_s: Float64Array
    knot_means_s: Float64Array
    second_derivs: Float64Array
    slope_left: float
    slope_right: float
    floor: float


def diurnal_knots(
    start_ns: Int64Array,
    duration_s: Float64Array,
    open_ns: int,
    open_s: int,
    close_s: int,
    bin_s: int,
) -> tuple[Float64Array, Float64Array]:
    """Match ``acd.json`` ``knots_s``/``knot_means_s``: mean duration per bin of its start.

    Bins ``[open + k bin, open + (k+1) bin)``, the last closed and ending at the close; the
    knot is the bin mid-point in seconds after local midnight; empty bins are skipped.
    """
    nbins = -(-(close_s - open_s) // bin_s)
    k = (start_ns - open_ns) // (bin_s * NS_PER_S)
    k = np.clip(k, 0, nbins - 1)
    counts = np.bincount(k, minlength=nbins)
    sums = np.bincount(k, weights=duration_s, minlength=nbins)
    edges = np.minimum(open_s + bin_s * np.arange(nbins + 1, dtype=np.float64), float(close_s))
    mids = 0.5 * (edges[:-1] + edges[1:])
    keep = counts > 0
    return mids[keep], sums[keep] / counts[keep]


def natural_spline(knots: Float64Array, values: Float64Array) -> tuple[Float64Array, float, float]:
    """Match R ``splines::interpSpline``: natural cubic spline, linear beyond the end knots.

    Returns the second derivatives at the knots and the end slopes used to extrapolate. Two
    knots give a straight line with constant extrapolation, one knot a constant.
    """
    n = knots.shape[0]
    m2 = np.zeros(n)
    if n < 2:
        return m2, 0.0, 0.0
    h = np.diff(knots)
    if n == 2:
        return m2, 0.0, 0.0
    a = np.zeros((n - 2, n - 2))
    rhs = np.empty(n - 2)
    for i in range(1, n - 1):
        a[i - 1, i - 1] = 2.0 * (h[i - 1] + h[i])
        if i > 1:
            a[i - 1, i - 2] = h[i - 1]
        if i < n - 2:
            a[i - 1, i] = h[i]
        rhs[i - 1] = 6.0 * (
            (values[i + 1] - values[i]) / h[i] - (values[i] - values[i - 1]) / h[i - 1]
        )
    m2[1:-1] = np.linalg.solve(a, rhs)
    left = (values[1] - values[0]) / h[0] - h[0] * (2.0 * m2[0] + m2[1]) / 6.0
    right = (values[-1] - values[-2]) / h[-1] + h[-1] * (m2[-2] + 2.0 * m2[-1]) / 6.0
    return m2, float(left), float(right)


def diurnal_phi_py(
    t: Float64Array,
    kx: Float64Array,
    ky: Float64Array,
    km: Float64Array,
    slope_left: float,
    slope_right: float,
    floor: float,
    out: Float64Array,
) -> None:
    """Match the reference ``phi`` of ``acd_durations.csv.gz``: floored spline at ``t`` (s)."""
    n = kx.shape[0]
    k = 0
    for i in range(t.shape[0]):
        x = t[i]
        if n == 1:
            v = ky[0]
        elif x < kx[0]:
            v = ky[0] + slope_left * (x - kx[0])
        elif x > kx[n - 1]:
            v = ky[n - 1] + slope_right * (x - kx[n - 1])
        else:
            if x < kx[k]:
                k = 0
            while k < n - 2 and x > kx[k + 1]:
                k += 1
            h = kx[k + 1] - kx[k]
            u = kx[k + 1] - x
            w = x - kx[k]
            v = (
                km[k] * u * u * u / (6.0 * h)
                + km[k + 1] * w * w * w / (6.0 * h)
                + (ky[k] / h - km[k] * h / 6.0) * u
                + (ky[k + 1] / h - km[k + 1] * h / 6.0) * w
            )
        out[i] = v if v > floor else floor


diurnal_phi_nb = jit(diurnal_phi_py)


def build_diurnal(
    start_ns: Int64Array,
    duration_s: Float64Array,
    *,
    open_ns: int,
    open_s: int,
    close_s: int,
    bin_s: int,
    floor_factor: float,
) -> Diurnal:
    """Build the diurnal factor of a day from its durations (statistics.md 4, steps 1-4)."""
    kx, ky = diurnal_knots(start_ns, duration_s, open_ns, open_s, close_s, bin_s)
    km, left, right = natural_spline(kx, ky)
    return Diurnal(kx, ky, km, left, right, floor_factor * float(np.mean(duration_s)))


def tod_seconds(timestamp_ns: npt.ArrayLike, open_ns: int, open_s: int) -> Float64Array:
    """Return local seconds after midnight of UTC ns stamps of one session day.

    Counted from the session open, whose wall-clock time is ``open_s``: the offset to UTC is
    constant within regular hours (no DST change happens between 09:30 and 16:00).
    """
    ts = as_int64(timestamp_ns, "timestamp_ns")
    midnight_ns = open_ns - open_s * NS_PER_S
    return (ts - midnight_ns) / 1e9


def diurnal_phi(diurnal: Diurnal, tod_s: npt.ArrayLike) -> Float64Array:
    """Match the reference ``phi``: diurnal factor at times ``tod_s`` (seconds after midnight).

    Parameters
    ----------
    diurnal
        The day's diurnal factor.
    tod_s
        Local times of day in seconds.

    Returns
    -------
    ndarray
        ``max(spline(t), floor)``.
    """
    t = as_float64(tod_s, "tod_s")
    out = np.empty_like(t)
    diurnal_phi_nb(
        t,
        diurnal.knots_s,
        diurnal.knot_means_s,
        diurnal.second_derivs,
        diurnal.slope_left,
        diurnal.slope_right,
        diurnal.floor,
        out,
    )
    return out


# --- likelihoods -------------------------------------------------------------------------------


def acd_exp_loglik_grad_py(
    xt: Float64Array,
    psi1: float,
    omega: float,
    alpha: float,
    beta: float,
    grad: Float64Array,
    exact: bool,
) -> float:
    r"""Match ACDm's exponential ACD(1,1) log-likelihood (``getLL.c``) with psi_1 = mean(xt).

    .. math:: LL = -\sum_i [\ln\psi_i + \tilde x_i/\psi_i], \quad
              \psi_i = \omega + \alpha\tilde x_{i-1} + \beta\psi_{i-1}

    Writes the exact gradient in ``(omega, alpha, beta)`` into ``grad``; ``-inf`` if some
    ``psi_i <= 0`` or the sum is not finite. ``exact=False`` sums ``ln psi_i`` as the log of
    a ``frexp``-normalised running product (NaN if it leaves the float range; retry exact).
    """
    psi = psi1
    d_w = 0.0
    d_a = 0.0
    d_b = 0.0
    g_w = 0.0
    g_a = 0.0
    g_b = 0.0
    acc = 0.0
    prod = 1.0
    expo = 0
    ok = True
    for i in range(xt.shape[0]):
        if i > 0:
            prev = xt[i - 1]
            d_w = 1.0 + beta * d_w
            d_a = prev + beta * d_a
            d_b = psi + beta * d_b
            psi = omega + alpha * prev + beta * psi
        if not psi > 0.0:
            grad[0] = 0.0
            grad[1] = 0.0
            grad[2] = 0.0
            return -math.inf
        inv = 1.0 / psi
        x = xt[i]
        if exact:
            acc += math.log(psi) + x * inv
        else:
            acc += x * inv
            prod *= psi
            if (i & 7) == 7:
                if not (prod > 0.0 and prod < math.inf):
                    ok = False
                mant, ex = math.frexp(prod)
                prod = mant
                expo += ex
        k = inv - x * inv * inv
        g_w += k * d_w
        g_a += k * d_a
        g_b += k * d_b
    if not exact:
        if not (ok and prod > 0.0 and prod < math.inf):
            return math.nan
        acc += math.log(prod) + expo * LN2
    grad[0] = -g_w
    grad[1] = -g_a
    grad[2] = -g_b
    if not math.isfinite(acc):
        return -math.inf
    return -acc


acd_exp_loglik_grad_nb = jit(acd_exp_loglik_grad_py)


def acd_weibull_loglik_grad_py(
    xt: Float64Array,
    log_xt: Float64Array,
    psi1: float,
    omega: float,
    alpha: float,
    beta: float,
    gamma: float,
    log_lam: float,
    dlog_lam: float,
    grad: Float64Array,
) -> float:
    r"""Match ACDm's Weibull ACD(1,1) log-likelihood with ``lam = Gamma(1 + 1/gamma)``.

    .. math:: LL = \sum_i [\ln(\gamma/\tilde x_i) + \gamma\ln(\lambda\tilde x_i/\psi_i)
              - (\lambda\tilde x_i/\psi_i)^\gamma]

    ``log_lam = ln lam`` and ``dlog_lam = d ln lam / d gamma`` are passed in (digamma is
    evaluated once per call, outside the loop). Writes the exact gradient in
    ``(omega, alpha, beta, gamma)`` into ``grad``.
    """
    psi = psi1
    d_w = 0.0
    d_a = 0.0
    d_b = 0.0
    g_w = 0.0
    g_a = 0.0
    g_b = 0.0
    g_g = 0.0
    ll = 0.0
    log_gamma = math.log(gamma)
    for i in range(xt.shape[0]):
        if i > 0:
            prev = xt[i - 1]
            d_w = 1.0 + beta * d_w
            d_a = prev + beta * d_a
            d_b = psi + beta * d_b
            psi = omega + alpha * prev + beta * psi
        if not psi > 0.0:
            grad[0] = 0.0
            grad[1] = 0.0
            grad[2] = 0.0
            grad[3] = 0.0
            return -math.inf
        z = log_lam + log_xt[i] - math.log(psi)
        e = math.exp(gamma * z)
        ll += log_gamma - log_xt[i] + gamma * z - e
        k = gamma * (e - 1.0) / psi
        g_w += k * d_w
        g_a += k * d_a
        g_b += k * d_b
        g_g += 1.0 / gamma + (z + gamma * dlog_lam) * (1.0 - e)
    grad[0] = g_w
    grad[1] = g_a
    grad[2] = g_b
    grad[3] = g_g
    if not math.isfinite(ll):
        return -math.inf
    return ll


acd_weibull_loglik_grad_nb = jit(acd_weibull_loglik_grad_py)


def acd_exp_loglik_grad(
    xt: Float64Array, psi1: float, omega: float, alpha: float, beta: float, grad: Float64Array
) -> float:
    """Match ACDm's exponential ACD log-likelihood with its gradient: fast, exact on overflow."""
    with np.errstate(over="ignore", invalid="ignore"):  # the Python twin's overflow is handled
        ll = acd_exp_loglik_grad_nb(xt, psi1, omega, alpha, beta, grad, False)
    if math.isnan(ll):
        ll = acd_exp_loglik_grad_nb(xt, psi1, omega, alpha, beta, grad, True)
    return float(ll)


def _weibull_lam(gamma: float) -> tuple[float, float]:
    """Return ``ln Gamma(1 + 1/gamma)`` and its derivative in gamma."""
    u = 1.0 + 1.0 / gamma
    return math.lgamma(u), -float(digamma(u)) / (gamma * gamma)


def acd_loglik(
    xt: npt.ArrayLike,
    params: tuple[float, ...],
    dist: str = "exp",
    psi1: float | None = None,
) -> float:
    """Match ACDm's log-likelihood at given parameters (``omega, alpha, beta[, gamma]``).

    Parameters
    ----------
    xt
        Diurnally adjusted durations.
    params
        ``(omega, alpha, beta)`` for ``"exp"``, ``(omega, alpha, beta, gamma)`` for
        ``"weibull"``.
    dist
        ``"exp"`` or ``"weibull"``.
    psi1
        Initial psi; ``mean(xt)`` when omitted.

    Returns
    -------
    float
        The log-likelihood (``-inf`` outside the domain).
    """
    x = as_float64(xt, "xt")
    p1 = float(np.mean(x)) if psi1 is None else psi1
    if dist == "exp":
        w, a, b = params[0], params[1], params[2]
        return float(acd_exp_loglik_grad_nb(x, p1, w, a, b, np.zeros(3), True))
    if dist == "weibull":
        w, a, b, g = params[0], params[1], params[2], params[3]
        lam, dlam = _weibull_lam(g)
        return float(
            acd_weibull_loglik_grad_nb(x, np.log(x), p1, w, a, b, g, lam, dlam, np.zeros(4))
        )
    raise ValueError(f"dist is {dist!r} and must be 'exp' or 'weibull'")


# --- fits ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AcdFit:
    """An ACD(1,1) fit (``dist`` ``"exp"`` or ``"weibull"``); floats NaN when not fitted."""

    dist: str
    n: int
    psi1: float
    omega: float
    alpha: float
    beta: float
    gamma: float
    loglik: float
    converged: bool | None
    status: int | None
    message: str
    at_boundary: bool | None
    reason: str | None

    @property
    def fitted(self) -> bool:
        """True when parameters exist."""
        return self.converged is not None

    @property
    def persistence(self) -> float:
        """``alpha + beta``."""
        return self.alpha + self.beta

    @property
    def uncond_mean(self) -> float:
        """``omega / (1 - alpha - beta)`` (adjusted-duration units)."""
        return self.omega / (1.0 - self.persistence) if self.persistence < 1.0 else _NAN

    @property
    def second_moment_exists(self) -> bool | None:
        """Exponential ACD: ``(alpha + beta)^2 + alpha^2 < 1``; None for other laws."""
        if self.dist != "exp" or not self.fitted:
            return None
        return self.persistence**2 + self.alpha**2 < 1.0


def _no_acd_fit(dist: str, n: int, reason: str) -> AcdFit:
    return AcdFit(dist, n, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN, None, None, "", None, reason)


def fit_acd(
    xt: npt.ArrayLike,
    dist: str = "exp",
    *,
    min_durations: int = 50,
    boundary_tol: float = DEFAULT_ACD_BOUNDARY_TOL,
    start: tuple[float, float, float] | None = None,
) -> AcdFit:
    r"""Match ``acd.json`` ``exp``/``weibull``: ACD(1,1) QML/ML on adjusted durations.

    .. math:: \tilde x_i = \psi_i\varepsilon_i, \quad \psi_1 = \overline{\tilde x}, \quad
              \psi_i = \omega + \alpha\tilde x_{i-1} + \beta\psi_{i-1}

    Feasible set ``omega in [1e-10 psi_1, 10 psi_1]``, ``alpha, beta in [0, 1]``,
    ``alpha + beta <= 1 - 1e-6``, Weibull ``gamma in [0.05, 10]``. Start: the best
    log-likelihood over the grid ``(psi_1 (1-q), a0, q - a0)``, ``a0`` in {0.05, 0.1, 0.2},
    ``q`` in {0.7, 0.9, 0.97} (gamma 0.8), plus ``start`` when given (the exponential fit's
    ``(omega, alpha, beta)`` is a consistent estimate of the Weibull psi parameters), then
    SLSQP with the exact gradient on ``-LL / m``.

    Parameters
    ----------
    xt
        Diurnally adjusted durations (> 0), in time order.
    dist
        ``"exp"`` (QML, drives the per-trade columns) or ``"weibull"``.
    min_durations
        Below this count no fit is attempted.
    boundary_tol
        ``alpha + beta >= 1 - boundary_tol``: parameters not identified, flagged.
    start
        Extra candidate start ``(omega, alpha, beta)``.

    Returns
    -------
    AcdFit
        The fit with its convergence and boundary flags.
    """
    if dist not in ("exp", "weibull"):
        raise ValueError(f"dist is {dist!r} and must be 'exp' or 'weibull'")
    x = as_float64(xt, "xt")
    m = x.shape[0]
    if m < min_durations:
        return _no_acd_fit(dist, m, f"ACD {dist}: {m} durations < {min_durations}")
    if not (np.isfinite(x).all() and (x > 0.0).all()):
        return _no_acd_fit(dist, m, f"ACD {dist}: non-finite or non-positive adjusted durations")
    psi1 = float(np.mean(x))
    weib = dist == "weibull"
    log_x = np.log(x) if weib else x
    npar = 4 if weib else 3
    grad = np.zeros(npar)

    def loglik(theta: Float64Array) -> float:
        if weib:
            lam, dlam = _weibull_lam(float(theta[3]))
            return acd_weibull_loglik_grad_nb(
                x, log_x, psi1, theta[0], theta[1], theta[2], theta[3], lam, dlam, grad
            )
        return acd_exp_loglik_grad(x, psi1, theta[0], theta[1], theta[2], grad)

    def objective(theta: Float64Array) -> tuple[float, Float64Array]:
        ll = loglik(theta)
        if not math.isfinite(ll):  # pragma: no cover - bounds keep psi_i > 0 and finite
            return 1e300, np.zeros(npar)
        return -ll / m, -grad / m

    lo, hi = ACD_OMEGA_BOUNDS[0] * psi1, ACD_OMEGA_BOUNDS[1] * psi1
    bounds = [(lo, hi), (0.0, 1.0), (0.0, 1.0)]
    gamma0 = [ACD_START_GAMMA] if weib else []
    starts = [
        [psi1 * (1.0 - q), a0, q - a0, *gamma0]
        for a0 in ACD_START_ALPHAS
        for q in ACD_START_PERSISTENCE
    ]
    if weib and start is not None:
        # Only the extra start is tried: the grid costs 9 Weibull passes, and the exponential
        # QML optimum is already close to the Weibull psi parameters.
        starts = [[min(max(start[0], lo), hi), start[1], start[2], *gamma0]]
    elif start is not None:
        starts.append([min(max(start[0], lo), hi), start[1], start[2]])
    lls = [loglik(np.array(s)) for s in starts]
    x0 = np.array(starts[int(np.argmax(lls))])
    if weib:
        bounds.append(ACD_GAMMA_BOUNDS)
    jac_sum = np.zeros(npar)
    jac_sum[1:3] = -1.0
    cons = {
        "type": "ineq",
        "fun": lambda th: ACD_MAX_PERSISTENCE - th[1] - th[2],
        "jac": lambda th: jac_sum,
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
            options={"ftol": ACD_SLSQP_FTOL, "maxiter": ACD_SLSQP_MAXITER},
        )
    theta = np.asarray(opt.x, dtype=np.float64)
    ll = acd_loglik(x, tuple(float(v) for v in theta), dist, psi1)
    if not math.isfinite(ll):  # pragma: no cover - defensive, as above
        return _no_acd_fit(dist, m, f"ACD {dist}: no finite log-likelihood at the optimum")
    omega, alpha, beta = (float(v) for v in theta[:3])
    at_boundary = alpha + beta >= 1.0 - boundary_tol
    converged = bool(opt.status == 0)
    notes: list[str] = []
    if not converged:
        notes.append(
            f"ACD {dist}: optimiser did not converge (SLSQP status {opt.status}: {opt.message})"
        )
    if at_boundary:
        notes.append(
            f"ACD {dist}: alpha + beta = {alpha + beta:.6f} on the stationarity boundary "
            "(parameters not identified"
            + ("; not to be used)" if weib else "; per-trade columns still use it)")
        )
    return AcdFit(
        dist=dist,
        n=m,
        psi1=psi1,
        omega=omega,
        alpha=alpha,
        beta=beta,
        gamma=float(theta[3]) if weib else _NAN,
        loglik=ll,
        converged=converged,
        status=int(opt.status),
        message=str(opt.message),
        at_boundary=at_boundary,
        reason="; ".join(notes) or None,
    )


# --- per-print filter --------------------------------------------------------------------------


def acd_filter_py(
    stamp_ns: Int64Array,
    phi: Float64Array,
    omega: float,
    alpha: float,
    beta: float,
    psi1: float,
    cond_out: Float64Array,
    surp_out: Float64Array,
    istate: Int64Array,
    fstate: Float64Array,
) -> None:
    """Match ``acd_durations.csv.gz`` ``expected_duration_s_exp`` and ``surprise_exp`` per print.

    ``phi`` is the diurnal factor at each print's own stamp; a new stamp closes the spell
    started at the previous stamp, whose ``phi`` was kept. Prints sharing a stamp share the
    values; prints at the day's first stamp get NaN. State, updated in place:
    ``istate = [last stamp, events seen]``, ``fstate = [phi at last stamp, psi, previous
    adjusted duration, conditional duration, surprise]``.
    """
    last = istate[0]
    nev = istate[1]
    phil = fstate[0]
    psi = fstate[1]
    xtp = fstate[2]
    cond = fstate[3]
    surp = fstate[4]
    for i in range(stamp_ns.shape[0]):
        t = stamp_ns[i]
        if nev == 0 or t != last:
            if nev >= 1:
                xt = (t - last) / 1e9 / phil
                psi = psi1 if nev == 1 else omega + alpha * xtp + beta * psi
                cond = phil * psi
                surp = xt / psi
                xtp = xt
            nev += 1
            last = t
            phil = phi[i]
        cond_out[i] = cond
        surp_out[i] = surp
    istate[0] = last
    istate[1] = nev
    fstate[0] = phil
    fstate[1] = psi
    fstate[2] = xtp
    fstate[3] = cond
    fstate[4] = surp


acd_filter_nb = jit(acd_filter_py)


@dataclass(frozen=True)
class AcdFilterState:
    """Resumable state of :func:`acd_expected` (see :func:`acd_filter_py`)."""

    ints: Int64Array
    floats: Float64Array

    @classmethod
    def initial(cls) -> AcdFilterState:
        """State at the start of a day."""
        return cls(np.zeros(2, dtype=np.int64), np.full(5, _NAN))


def acd_expected(
    timestamp_ns: npt.ArrayLike,
    phi: npt.ArrayLike,
    fit: AcdFit,
    state: AcdFilterState | None = None,
) -> tuple[Float64Array, Float64Array, AcdFilterState]:
    r"""Match ``expected_duration_s_exp``/``surprise_exp``: conditional duration and surprise.

    .. math:: E[x_i] = \phi(t_{i-1})\psi_i, \qquad s_i = x_i / (\phi(t_{i-1})\psi_i)

    Parameters
    ----------
    timestamp_ns
        Stamps of the day's prints in order.
    phi
        Diurnal factor at each print's stamp (:func:`diurnal_phi`).
    fit
        The day's exponential ACD fit (all NaN output when it has no parameters).
    state
        State returned by the previous batch of the same day; ``None`` at the day's start.

    Returns
    -------
    conditional_duration, surprise : ndarray
        Per print; NaN at the first stamp of the day.
    state : AcdFilterState
        State to pass with the next batch.
    """
    ts = as_int64(timestamp_ns, "timestamp_ns")
    ph = as_float64(phi, "phi")
    if ts.shape != ph.shape:
        raise ValueError(f"timestamp_ns has {ts.shape[0]} rows but phi has {ph.shape[0]}")
    st = state or AcdFilterState.initial()
    cond = np.full(ts.shape[0], _NAN)
    surp = np.full(ts.shape[0], _NAN)
    if not fit.fitted:
        return cond, surp, st
    st = AcdFilterState(st.ints.copy(), st.floats.copy())
    acd_filter_nb(ts, ph, fit.omega, fit.alpha, fit.beta, fit.psi1, cond, surp, st.ints, st.floats)
    return cond, surp, st


@dataclass(frozen=True)
class AcdDay:
    """ACD outputs of one symbol-day: events, diurnal factor, both fits, per-print columns."""

    n_durations: int
    diurnal: Diurnal | None
    adjusted: Float64Array
    exp: AcdFit
    weibull: AcdFit
    conditional_duration: Float64Array
    surprise: Float64Array


def acd_day(
    timestamp_ns: npt.ArrayLike,
    *,
    open_ns: int,
    open_s: int,
    close_s: int,
    bin_s: int = 1800,
    floor_factor: float = 1e-3,
    min_durations: int = 50,
    boundary_tol: float = DEFAULT_ACD_BOUNDARY_TOL,
) -> AcdDay:
    """Match ``acd.json`` and ``acd_durations.csv.gz``: every ACD output of one symbol-day.

    Parameters
    ----------
    timestamp_ns
        Sorted stamps of the day's regular-hours prints.
    open_ns
        UTC ns of the session open on that day.
    open_s, close_s
        Session open and close in seconds after local midnight.
    bin_s, floor_factor, min_durations, boundary_tol
        Diurnal bin, phi floor factor, minimum durations, boundary tolerance.

    Returns
    -------
    AcdDay
        Diurnal factor, exponential and Weibull fits, per-print conditional duration and
        surprise from the exponential fit.
    """
    ts = as_int64(timestamp_ns, "timestamp_ns")
    n = ts.shape[0]
    empty = np.full(n, _NAN)
    first = np.flatnonzero(np.concatenate(([True], ts[1:] != ts[:-1]))) if n else ts[:0]
    stamps = ts[first]
    m = max(stamps.shape[0] - 1, 0)
    if m < min_durations:
        reason = f"ACD: {m} durations < {min_durations}"
        return AcdDay(
            m, None, np.empty(0), _no_acd_fit("exp", m, reason),
            _no_acd_fit("weibull", m, reason), empty, empty.copy(),
        )  # fmt: skip
    dur = np.diff(stamps) / 1e9
    diurnal = build_diurnal(
        stamps[:-1], dur, open_ns=open_ns, open_s=open_s, close_s=close_s, bin_s=bin_s,
        floor_factor=floor_factor,
    )  # fmt: skip
    phi_print = diurnal_phi(diurnal, tod_seconds(ts, open_ns, open_s))
    xt = dur / phi_print[first[:-1]]
    exp_fit = fit_acd(xt, "exp", min_durations=min_durations, boundary_tol=boundary_tol)
    weib_start = (exp_fit.omega, exp_fit.alpha, exp_fit.beta) if exp_fit.fitted else None
    weib_fit = fit_acd(
        xt, "weibull", min_durations=min_durations, boundary_tol=boundary_tol, start=weib_start
    )
    cond, surp, _ = acd_expected(ts, phi_print, exp_fit)
    return AcdDay(m, diurnal, xt, exp_fit, weib_fit, cond, surp)
