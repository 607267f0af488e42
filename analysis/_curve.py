"""A model of one seed's whole accuracy curve over ln λ: λ* and both edges without a grid.

Test accuracy: base + (top − base) · σ((x − a)/w_a) · σ((c − x)/w_c), x = ln λ, σ the
logistic: a rise at a, a fall at c, each with its own width (the seed task rises steeply
and falls slowly). Train accuracy: lo + (hi − lo) · σ((k − x)/w_k). Fitted by least
squares to all of a seed's λ > 0 at once, so every point weighs in and no single one
decides: the onset where the fitted test curve
first reaches half its maximum, the collapse where the fitted train curve falls below half
its plateau, and λ* the centre of the fitted curve's top (within 2% of its maximum).

Why not a smoothed argmax: on a flat top (0.97-0.99 over 4× in λ) the argmax is decided by
the grid -- dropping one far-away point moved study 1's λ* from 0.13 to 0.16. The model's
maximum is set by where the two sides are, which the points on each side pin down.

What the grid still limits: a transition steeper than the grid's spacing puts no point on
its slope, and the data then say only that it lies between two grid points. Such an edge
is *unresolved* and carries the uniform error gap²/12 of that gap (the same for every
seed, since the seeds share the grid); a resolved one carries none.

Whether an edge exists at all is decided from the data (as in `_edges`): onset censored
'below' when the smallest λ already reaches half the maximum, 'never' when none does;
collapse censored 'above' when train accuracy never falls below half its plateau.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
from scipy import optimize

MIN_POINTS = 7  # the test model has 6 parameters
FRACTION = 0.5
TOL = 0.02  # the top of the fitted curve: within 2% (relative) of its maximum
_FINE = 257  # bracketing grid; every estimate is then refined (Brent)
# A transition is resolved when a grid point sits on its slope: model value between
# these fractions of its amplitude (a logistic covers 10-90% in 4.4 widths).
_SLOPE = (0.1, 0.9)


def _sig(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic, without overflow


def test_model(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    base, top, a, wa, c, wc = p
    return base + (top - base) * _sig((x - a) / wa) * _sig((c - x) / wc)


def train_model(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    lo, hi, k, wk = p
    return lo + (hi - lo) * _sig((k - x) / wk)


def _test_jac(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    base, top, a, wa, c, wc = p
    r, f = _sig((x - a) / wa), _sig((c - x) / wc)
    amp, dr, df = top - base, r * (1 - r), f * (1 - f)
    return np.column_stack([1 - r * f, r * f, -amp * f * dr / wa,
                            -amp * f * dr * (x - a) / wa**2, amp * r * df / wc,
                            -amp * r * df * (c - x) / wc**2])


def _train_jac(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    lo, hi, k, wk = p
    s = _sig((k - x) / wk)
    ds = (hi - lo) * s * (1 - s)
    return np.column_stack([1 - s, s, ds / wk, -ds * (k - x) / wk**2])


def _first_cross(x: np.ndarray, y: np.ndarray, thr: float, up: bool) -> float:
    """First x where y crosses thr upwards (or downwards), linearly interpolated."""
    hit = np.flatnonzero(y >= thr if up else y < thr)
    if not len(hit) or hit[0] == 0:
        return math.nan
    j = int(hit[0])
    return float(x[j - 1] + (thr - y[j - 1]) / (y[j] - y[j - 1]) * (x[j] - x[j - 1]))


def _gap_var(x: np.ndarray, at: float, mid: np.ndarray) -> float:
    """Grid variance of a transition at `at`: 0 when some point sits on its slope (`mid`
    marks the points with a model value between 10% and 90% of the transition), else the
    uniform variance over the gap between the grid points around `at`."""
    if not math.isfinite(at) or mid.any():
        return 0.0
    j = int(np.searchsorted(x, at))
    lo, hi = x[max(j - 1, 0)], x[min(j, len(x) - 1)]
    return float((hi - lo) ** 2 / 12)


@functools.lru_cache(maxsize=8192)
def _fit_test(xb: bytes, yb: bytes) -> tuple:
    x, y = np.frombuffer(xb), np.frombuffer(yb)
    h = float(np.median(np.diff(x)))
    i = int(np.argmax(y))
    top, base = float(y[i]), float(min(y[0], y[-1]))
    a0 = _first_cross(x, y, (top + base) / 2, up=True)
    c0 = _first_cross(x[i:], y[i:], (top + base) / 2, up=False)
    a0 = x[0] - h if not math.isfinite(a0) else a0
    c0 = x[-1] + h if not math.isfinite(c0) else c0
    span = x[-1] - x[0]
    lo = [-0.1, 0.0, x[0] - span, 0.02, x[0], 0.02]
    hi = [1.1, 1.1, x[-1], 3.0, x[-1] + span, 3.0]
    best = None
    for wa, wc in ((h / 2, h / 2), (0.1, 0.5), (0.5, 0.1)):
        p0 = np.clip([base, top, a0, wa, c0, wc], np.add(lo, 1e-9), np.subtract(hi, 1e-9))
        r = optimize.least_squares(lambda p: test_model(x, p) - y, p0, bounds=(lo, hi),
                                   jac=lambda p: _test_jac(x, p),
                                   x_scale=[0.1, 0.1, h, h, h, h])
        if best is None or r.cost < best.cost:
            best = r
    return tuple(best.x), *_jac(best, len(x))


@functools.lru_cache(maxsize=8192)
def _fit_train(xb: bytes, yb: bytes) -> tuple:
    x, y = np.frombuffer(xb), np.frombuffer(yb)
    h = float(np.median(np.diff(x)))
    i = int(np.argmax(y))
    k0 = _first_cross(x[i:], y[i:], y[i] / 2, up=False)
    k0 = x[-1] + h if not math.isfinite(k0) else k0
    span = x[-1] - x[0]
    lo, hi = [-0.1, 0.0, x[0] - span, 0.02], [1.1, 1.1, x[-1] + span, 3.0]
    p0 = np.clip([float(y[-1]), float(y[i]), k0, h / 2], np.add(lo, 1e-9),
                 np.subtract(hi, 1e-9))
    r = optimize.least_squares(lambda p: train_model(x, p) - y, p0, bounds=(lo, hi),
                               jac=lambda p: _train_jac(x, p), x_scale=[0.1, 0.1, h, h])
    return tuple(r.x), *_jac(r, len(x))


def _jac(r: optimize.OptimizeResult, n: int) -> tuple[tuple[float, ...], float, tuple[bool, ...]]:
    """(Jacobian, residual variance with n − k dof, which parameters sit off their bounds)."""
    k = r.jac.shape[1]
    s2 = 2 * r.cost / (n - k) if n > k else math.nan
    return tuple(r.jac.ravel()), s2, tuple(bool(v) for v in r.active_mask == 0)


def _cov(J: np.ndarray, s2: float, free: np.ndarray) -> np.ndarray:
    """Parameter covariance s²(JᵀJ)⁻¹ over the free parameters, the others held fixed:
    at a bound, or the location and width of a transition no grid point resolves (the
    data leave those flat; their effect is the grid variance, counted apart)."""
    k = J.shape[1]
    cov = np.zeros((k, k))
    if math.isfinite(s2) and free.any():
        Jf = J[:, free]
        cov[np.ix_(free, free)] = s2 * np.linalg.pinv(Jf.T @ Jf, hermitian=True)
    return cov


def _delta_var(g: Callable[[np.ndarray], float], p: np.ndarray, cov: np.ndarray,
               span: float) -> float:
    """Var g(p̂) by the delta method, central differences in each parameter; never more
    than a uniform error over the whole grid (`span`), which is all that an ill-determined
    fit (a flat direction in its parameters) says."""
    v = g(p)
    if not math.isfinite(v):
        return math.nan
    grad = np.zeros(len(p))
    for i in range(len(p)):
        e = np.zeros(len(p))
        e[i] = 1e-5 * max(abs(p[i]), 0.1)
        hi, lo = g(p + e), g(p - e)
        grad[i] = (hi - lo) / (2 * e[i]) if math.isfinite(hi) and math.isfinite(lo) else 0.0
    var = float(grad @ cov @ grad)
    return min(max(var, 0.0), span**2 / 12) if math.isfinite(var) else span**2 / 12


Curve = Callable[[float], float]


def _test1(p: np.ndarray) -> Curve:
    """The fitted test curve as a function of a float (Brent) or an array (brackets)."""
    base, top, a, wa, c, wc = (float(v) for v in p)
    return lambda u: (test_model(u, p) if isinstance(u, np.ndarray) else
                      base + (top - base) * _sig1((u - a) / wa) * _sig1((c - u) / wc))


def _train1(q: np.ndarray) -> Curve:
    lo, hi, k, wk = (float(v) for v in q)
    return lambda u: (train_model(u, q) if isinstance(u, np.ndarray) else
                      lo + (hi - lo) * _sig1((k - u) / wk))


def _sig1(z: float) -> float:
    return 0.5 * (1.0 + math.tanh(0.5 * z))


def _argmax(f: Curve, lo: float, hi: float) -> float:
    """The maximum of a unimodal curve on [lo, hi]: bracketed on a grid, then refined."""
    fine = np.linspace(lo, hi, _FINE)
    i = int(np.argmax(f(fine)))
    a, b = fine[max(i - 1, 0)], fine[min(i + 1, _FINE - 1)]
    r = optimize.minimize_scalar(lambda u: -f(u), bounds=(a, b), method="bounded",
                                 options={"xatol": 1e-9})
    return float(r.x)


def _crossing(f: Curve, lo: float, hi: float, thr: float, up: bool) -> float:
    """First u in [lo, hi] where f crosses thr upwards (downwards): bracketed, then Brent."""
    fine = np.linspace(lo, hi, _FINE)
    y = f(fine)
    hit = np.flatnonzero(y >= thr if up else y < thr)
    if not len(hit) or hit[0] == 0:
        return math.nan
    j = int(hit[0])
    return float(optimize.brentq(lambda u: f(u) - thr, fine[j - 1], fine[j], xtol=1e-10))


def _star(p: np.ndarray, lo: float, hi: float) -> float:
    """The centre (in ln λ) of the fitted curve's top: where it is within TOL of its
    maximum. Not the argmax: on a flat top the argmax is set by differences far below the
    noise and moves with them; the top's two ends are set by the slopes either side."""
    f = _test1(p)
    m = _argmax(f, lo, hi)
    thr = (1 - TOL) * f(m)
    left = lo if f(lo) >= thr else _crossing(f, lo, m, thr, up=True)
    right = _crossing(f, m, hi, thr, up=False)
    right = hi if not math.isfinite(right) else right
    return 0.5 * (left + right) if math.isfinite(left) else m


def _top(p: np.ndarray, lo: float, hi: float) -> float:
    f = _test1(p)
    return f(_argmax(f, lo, hi))


def _onset(p: np.ndarray, lo: float, hi: float) -> float:
    return _crossing(_test1(p), lo, hi, FRACTION * _top(p, lo, hi), up=True)


def _collapse(q: np.ndarray, lo: float, hi: float) -> float:
    f = _train1(q)
    j = _argmax(f, lo, hi)
    return _crossing(f, j, hi, FRACTION * f(j), up=False)


def fit_seed(x: np.ndarray, test: np.ndarray, train: np.ndarray | None = None
             ) -> dict[str, float | str]:
    """One seed's ln λ*, onset and collapse from the fitted curves, each with its fit
    variance (delta method from the curve fit's covariance), its grid variance (0 when
    resolved) and censoring ('' when inside the grid)."""
    x, test = np.ascontiguousarray(x, float), np.ascontiguousarray(test, float)
    tb = b"" if train is None else np.ascontiguousarray(train, float).tobytes()
    return dict(_fit_seed(x.tobytes(), test.tobytes(), tb))  # λ* and edges share one fit


@functools.lru_cache(maxsize=8192)
def _fit_seed(xb: bytes, yb: bytes, tb: bytes) -> tuple[tuple[str, float | str], ...]:
    x, test = np.frombuffer(xb), np.frombuffer(yb)
    train = np.frombuffer(tb) if tb else None
    return tuple(_seed(x, test, train).items())


def _seed(x: np.ndarray, test: np.ndarray, train: np.ndarray | None
          ) -> dict[str, float | str]:
    pt, jt, s2, free = _fit_test(x.tobytes(), test.tobytes())
    p = np.array(pt)
    lo, hi = float(x[0]), float(x[-1])
    star = _star(p, lo, hi)
    rise = _sig((x - p[2]) / p[3])
    fall = _sig((p[4] - x) / p[5])
    on_mid = (rise > _SLOPE[0]) & (rise < _SLOPE[1])
    fall_mid = (fall > _SLOPE[0]) & (fall < _SLOPE[1])
    free = np.array(free) & np.array([True, True, *[on_mid.any()] * 2, *[fall_mid.any()] * 2])
    cov = _cov(np.array(jt).reshape(len(x), len(p)), s2, free)
    thr = FRACTION * _top(p, lo, hi)
    out: dict[str, float | str] = dict(
        ln_lambda_star=star, star_fit_var=_delta_var(lambda v: _star(v, lo, hi), p, cov, hi - lo),
        star_grid_var=0.25 * (_gap_var(x, p[2], on_mid) + _gap_var(x, p[4], fall_mid)))
    hit = np.flatnonzero(test >= thr)
    cens = "never" if not len(hit) else "below" if hit[0] == 0 else ""
    on = _onset(p, lo, hi) if not cens else math.nan
    if not cens and not math.isfinite(on):
        cens = "never"
    out.update(ln_onset=on, onset_censored=cens,
               onset_fit_var=_delta_var(lambda v: _onset(v, lo, hi), p, cov, hi - lo) if not cens
               else math.nan,
               onset_grid_var=_gap_var(x, on, on_mid) if not cens else math.nan)
    if train is None or not np.isfinite(train).all():
        out.update(ln_collapse=math.nan, collapse_censored="no train accuracy",
                   collapse_fit_var=math.nan, collapse_grid_var=math.nan)
        return out
    train = np.ascontiguousarray(train, float)
    i = int(np.argmax(train))
    co, cens, fv, gv = math.nan, "above", math.nan, math.nan
    if (train[i:] < FRACTION * train[i]).any():
        qt, jq, s2q, freeq = _fit_train(x.tobytes(), train.tobytes())
        q = np.array(qt)
        co = _collapse(q, lo, hi)
        if math.isfinite(co):
            k = _sig((q[2] - x) / q[3])
            on_k = ((k > _SLOPE[0]) & (k < _SLOPE[1])).any()
            qc = _cov(np.array(jq).reshape(len(x), len(q)), s2q,
                      np.array(freeq) & np.array([True, True, on_k, on_k]))
            cens, fv = "", _delta_var(lambda v: _collapse(v, lo, hi), q, qc, hi - lo)
            gv = _gap_var(x, co, (k > _SLOPE[0]) & (k < _SLOPE[1]))
    out.update(ln_collapse=co, collapse_censored=cens, collapse_fit_var=fv,
               collapse_grid_var=gv)
    return out
