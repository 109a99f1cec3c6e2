"""The one numeric configuration of the kernels: constants, defaults, jit options, ``Params``.

Every default of the statistics specification (``statistics.md`` v1) lives here, once.
``Params`` carries them through ``symbol_day`` and is recorded with every stored result.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

# Options of every numba-compiled kernel. fastmath stays off (the default): the kernels must
# reproduce reference numbers to 1e-9 and keep NaN/inf semantics. error_model "numpy" drops
# the zero-division checks; kernels guard their divisions instead, so both twins agree.
JIT_OPTIONS: dict[str, Any] = {"cache": True, "nogil": True, "error_model": "numpy"}

# --- mathematical constants (statistics.md section 2) ---------------------------------------
MU1: float = math.sqrt(2.0 / math.pi)  # E|Z| = 0.7978845608028654
MU43: float = 2.0 ** (2.0 / 3.0) * math.gamma(7.0 / 6.0) / math.gamma(0.5)  # 0.8308609250295592
THETA: float = math.pi**2 / 4.0 + math.pi - 5.0  # 0.6089937538621326
LOG_2PI: float = math.log(2.0 * math.pi)
LN2: float = math.log(2.0)
NS_PER_S: int = 1_000_000_000

# --- defaults (statistics.md sections 1-6) ----------------------------------------------------
DEFAULT_TZ = "America/New_York"
DEFAULT_OPEN = "09:30:00"
DEFAULT_CLOSE = "16:00:00"
DEFAULT_LM_WINDOW = 270  # K
DEFAULT_ALPHA = 0.01
DEFAULT_BNS_WINDOW = 500  # W, rolling tick BNS
DEFAULT_BNS_GRID_S = 300  # daily BNS, previous-tick grid
DEFAULT_DIURNAL_BIN_S = 1800
DEFAULT_INTENSITY_BUCKET_S = 60
DEFAULT_INTENSITY_WINDOW = 30
DEFAULT_GARCH_MIN_RETURNS = 100
DEFAULT_ACD_MIN_DURATIONS = 50
DEFAULT_ACD_BOUNDARY_TOL = 1e-4  # alpha + beta >= 1 - tol: not identified (section 4)
DEFAULT_ACD_PHI_FLOOR = 1e-3  # phi >= floor * mean duration
DEFAULT_GARCH_BOUNDARY_TOL = 1e-6  # alpha + beta >= 1 - tol: on the IGARCH boundary

# --- fitting conventions (sections 3 and 4) ---------------------------------------------------
GARCH_START_ALPHAS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.2)
GARCH_START_PERSISTENCE: tuple[float, ...] = (0.5, 0.7, 0.9, 0.98)
GARCH_OMEGA_BOUNDS: tuple[float, float] = (1e-8, 10.0)  # times mean(e^2)
GARCH_SLSQP_FTOL = 1e-12  # on -LL / n (arch: 1e-6 on -LL; this is tighter for n < 1e6)
GARCH_SLSQP_MAXITER = 100
ACD_START_ALPHAS: tuple[float, ...] = (0.05, 0.1, 0.2)
ACD_START_PERSISTENCE: tuple[float, ...] = (0.7, 0.9, 0.97)
ACD_START_GAMMA = 0.8
ACD_OMEGA_BOUNDS: tuple[float, float] = (1e-10, 10.0)  # times psi_1
ACD_MAX_PERSISTENCE = 1.0 - 1e-6
ACD_GAMMA_BOUNDS: tuple[float, float] = (0.05, 10.0)
ACD_SLSQP_FTOL = 1e-13  # on -LL / m
ACD_SLSQP_MAXITER = 500

SIGNAL_RULE = "v1"
SIGNAL_RULE_TEXT = (
    "BUY if jump_detected and log_return > 0; SELL if jump_detected and log_return < 0; "
    "HOLD otherwise (including prints with null lee_mykland_stat)"
)
LM_N_DEFINITION = "n = number of tick returns in the (symbol, New York date) partition"

_HMS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d):([0-5]\d)$")


def hms_to_seconds(text: str) -> int:
    """Return the seconds after midnight of a ``HH:MM:SS`` wall-clock time.

    Parameters
    ----------
    text
        Time of day, e.g. ``"09:30:00"``.

    Returns
    -------
    int
        Seconds after local midnight.
    """
    match = _HMS.match(text)
    if match is None:
        raise ValueError(f"time of day is {text!r} and must be HH:MM:SS")
    h, m, s = (int(g) for g in match.groups())
    return 3600 * h + 60 * m + s


@dataclass(frozen=True)
class Params:
    """Every configurable parameter of the statistics, with the specification's defaults.

    Attributes
    ----------
    tz, session_open, session_close
        Local clock and regular trading hours (both ends inclusive).
    lm_window
        Lee-Mykland window ``K`` (tick returns; the K-1 returns before the tested one).
    alpha
        Significance of the Lee-Mykland Gumbel test and of the daily BNS test.
    bns_window
        Rolling tick BNS window ``W`` (returns).
    bns_grid_s
        Daily BNS previous-tick sampling interval (seconds).
    diurnal_bin_s
        ACD diurnal-factor bin width (seconds).
    intensity_bucket_s, intensity_window
        Intensity bucket width (seconds) and trailing window (buckets).
    garch_min_returns, acd_min_durations
        Below these counts the fits are not attempted (nulls and a note).
    acd_boundary_tol, garch_boundary_tol
        ``alpha + beta >= 1 - tol`` flags a fit as on the boundary.
    acd_phi_floor
        The diurnal factor is floored at ``acd_phi_floor * mean(duration)``.
    signal_rule
        Name of the signal rule (only ``"v1"`` exists).
    """

    tz: str = DEFAULT_TZ
    session_open: str = DEFAULT_OPEN
    session_close: str = DEFAULT_CLOSE
    lm_window: int = DEFAULT_LM_WINDOW
    alpha: float = DEFAULT_ALPHA
    bns_window: int = DEFAULT_BNS_WINDOW
    bns_grid_s: int = DEFAULT_BNS_GRID_S
    diurnal_bin_s: int = DEFAULT_DIURNAL_BIN_S
    intensity_bucket_s: int = DEFAULT_INTENSITY_BUCKET_S
    intensity_window: int = DEFAULT_INTENSITY_WINDOW
    garch_min_returns: int = DEFAULT_GARCH_MIN_RETURNS
    acd_min_durations: int = DEFAULT_ACD_MIN_DURATIONS
    acd_boundary_tol: float = DEFAULT_ACD_BOUNDARY_TOL
    garch_boundary_tol: float = DEFAULT_GARCH_BOUNDARY_TOL
    acd_phi_floor: float = DEFAULT_ACD_PHI_FLOOR
    signal_rule: str = SIGNAL_RULE

    def __post_init__(self) -> None:
        open_s, close_s = hms_to_seconds(self.session_open), hms_to_seconds(self.session_close)
        if close_s <= open_s:
            raise ValueError(
                f"session_close is {self.session_close} and must be after {self.session_open}"
            )
        checks: list[tuple[str, float, float]] = [
            ("lm_window", self.lm_window, 3),
            ("bns_window", self.bns_window, 4),
            ("bns_grid_s", self.bns_grid_s, 1),
            ("diurnal_bin_s", self.diurnal_bin_s, 1),
            ("intensity_bucket_s", self.intensity_bucket_s, 1),
            ("intensity_window", self.intensity_window, 2),
            ("garch_min_returns", self.garch_min_returns, 2),
            ("acd_min_durations", self.acd_min_durations, 2),
        ]
        for name, value, low in checks:
            if int(value) != value or value < low:
                raise ValueError(f"{name} is {value} and must be an integer of at least {low}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha is {self.alpha} and must be in (0, 1)")
        for name, value in (
            ("acd_boundary_tol", self.acd_boundary_tol),
            ("garch_boundary_tol", self.garch_boundary_tol),
            ("acd_phi_floor", self.acd_phi_floor),
        ):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} is {value} and must be in [0, 1)")
        if self.signal_rule != SIGNAL_RULE:
            raise ValueError(f"signal_rule is {self.signal_rule!r}; only {SIGNAL_RULE!r} exists")

    @property
    def open_s(self) -> int:
        """Session open in seconds after local midnight."""
        return hms_to_seconds(self.session_open)

    @property
    def close_s(self) -> int:
        """Session close in seconds after local midnight."""
        return hms_to_seconds(self.session_close)

    @property
    def n_buckets(self) -> int:
        """Number of intensity buckets, ``ceil((close - open) / bucket)``."""
        return -(-(self.close_s - self.open_s) // self.intensity_bucket_s)

    def to_dict(self) -> dict[str, Any]:
        """Return every parameter as a JSON-ready dict (for provenance)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Params:
        """Build parameters from a dict produced by :meth:`to_dict` (unknown keys rejected)."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown parameters {unknown}; known are {sorted(known)}")
        return cls(**values)
