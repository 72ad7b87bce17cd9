"""The differential harness's shared half: stock and ours run side by side on
the same input, and their outcomes are compared.

A run is a function of the optimizer class that returns snapshots (a list
of named NumPy arrays after each step). `compare` runs it for the stock
class and for ours: where stock raises, ours must raise; where stock works,
ours must work and agree, bit for bit or within a `Tolerance` that names the
deliberate difference (README.md) that allows it. The Keras 3 harness is in
test_differential.py, the tf_keras one in legacy_suite/.
"""
import dataclasses
import warnings

import numpy as np


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """How far ours may be from stock, and which documented difference says so."""
    rtol: float = 0.0
    atol: float = 0.0
    why: str = "bit for bit"
    # Elements where stock stores NaN and ours a number are not compared
    # (centered: stock takes the root of a negative ms - mg^2, ours of 0).
    stock_nan_ok: bool = False

    @property
    def exact(self):
        return self.rtol == 0.0 and self.atol == 0.0


EXACT = Tolerance()


def loosest(*tolerances):
    """The widest of several tolerances (their reasons joined)."""
    nan_ok = any(t.stock_nan_ok for t in tolerances)
    tolerances = [t for t in tolerances if not t.exact] or [EXACT]
    return Tolerance(max(t.rtol for t in tolerances), max(t.atol for t in tolerances),
                     "; ".join(sorted({t.why for t in tolerances})), nan_ok)


@dataclasses.dataclass
class Outcome:
    snapshots: list = None
    error: BaseException = None


def _capture(run, cls):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return Outcome(snapshots=run(cls))
        except Exception as error:  # noqa: BLE001 - the error is the outcome
            return Outcome(error=error)


def _bits(a):
    # Real floating types, bfloat16 (kind "V") included.
    a = np.asarray(a)
    return a.view(np.dtype(f"u{a.dtype.itemsize}"))


def _first_difference(name, ours, theirs, tolerance):
    """None when the arrays agree within `tolerance`, else a description."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    if ours.shape != theirs.shape or ours.dtype != theirs.dtype:
        return f"{name}: ours {ours.dtype}{ours.shape}, stock {theirs.dtype}{theirs.shape}"
    if ours.dtype.kind != "f" and str(ours.dtype) != "bfloat16":
        return None if np.array_equal(ours, theirs) else f"{name}: ours {ours}, stock {theirs}"
    wide_ours, wide_theirs = ours.astype(np.float64), theirs.astype(np.float64)
    nan_ours, nan_theirs = np.isnan(wide_ours), np.isnan(wide_theirs)
    if tolerance.stock_nan_ok and nan_theirs.any():
        keep = ~nan_theirs
        return _first_difference(name, ours[keep], theirs[keep], tolerance)
    if not np.array_equal(nan_ours, nan_theirs):
        return f"{name}: NaN in different elements: ours {ours}, stock {theirs}"
    if tolerance.exact:
        # Every bit, but NaN payloads (deliberate: one canonical NaN).
        same = (_bits(ours) == _bits(theirs)) | nan_ours
        if same.all():
            return None
        i = np.flatnonzero(~same.ravel())[0]
        return (f"{name}: not bit for bit at flat index {i}: ours {ours.ravel()[i]!r}, "
                f"stock {theirs.ravel()[i]!r} ({int((~same).sum())} of {same.size} differ)")
    finite = ~nan_ours
    a, b = wide_ours[finite], wide_theirs[finite]
    close = (a == b) | (np.abs(a - b) <= tolerance.atol + tolerance.rtol * np.abs(b))
    if close.all():
        return None
    i = np.flatnonzero(~close)[0]
    return (f"{name}: ours {a[i]!r}, stock {b[i]!r}, beyond rtol {tolerance.rtol} "
            f"atol {tolerance.atol} ({tolerance.why})")


def outcomes(run, stock_cls, our_cls):
    """(stock's Outcome, ours) of `run`."""
    return _capture(run, stock_cls), _capture(run, our_cls)


def assert_ours_works_where_stock_does(theirs, ours):
    if theirs.error is None and ours.error is not None:
        raise AssertionError(
            f"stock worked, ours raised {type(ours.error).__name__}: {ours.error}") from ours.error


def assert_ours_raises_where_stock_does(theirs, ours):
    assert theirs.error is None or ours.error is not None, (
        f"stock raised {type(theirs.error).__name__}: {theirs.error}; ours did not")


def compare(run, stock_cls, our_cls, tolerance, skip=lambda name: False):
    """Runs `run(cls)` for both classes and fails on any divergence. `skip`
    says which snapshot entries a documented difference leaves uncompared."""
    theirs, ours = outcomes(run, stock_cls, our_cls)
    assert_ours_raises_where_stock_does(theirs, ours)
    assert_ours_works_where_stock_does(theirs, ours)
    if theirs.error is not None:
        return theirs, ours
    assert len(ours.snapshots) == len(theirs.snapshots)
    for step, (mine, stock) in enumerate(zip(ours.snapshots, theirs.snapshots)):
        assert [n for n, _ in mine] == [n for n, _ in stock], (
            f"step {step}: ours has {[n for n, _ in mine]}, stock {[n for n, _ in stock]}")
        for (name, a), (_, b) in zip(mine, stock):
            if skip(name):
                continue
            problem = _first_difference(name, a, b, tolerance)
            assert problem is None, f"after step {step}: {problem}"
    return theirs, ours
