"""NumPy references for the RMSProp update.

`rmsprop_step` mirrors rmsprop_op/cc/kernels/common/rmsprop_math.h line for line.
With compute_dtype=float64 it is the exact formula; with the op's own compute
type (float32 for half, bfloat16 and float32 variables, the variable's own
for float64 and complex) it reproduces the op bit for bit, since NumPy rounds
each +, *, / and sqrt as the kernels do; complex products, quotients and
roots are written out part by part as rmsprop_math::Complex computes them.
"""
import ml_dtypes
import numpy as np


def compute_dtype_of(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "c" or dtype == np.float64:
        return dtype.type
    return np.float32


class _Complex:
    """rmsprop_math::Complex: the real and imaginary parts as real arrays,
    with the kernels' arithmetic (NumPy's own complex division and sqrt use
    other algorithms, and its complex ufuncs would hide the parts from a
    real-array subclass such as tests/test_fuzz.py's flush-to-zero one)."""

    __array_ufunc__ = None  # `numpy scalar * _Complex` calls __rmul__

    def __init__(self, re, im):
        self.re, self.im = re, im

    @classmethod
    def of(cls, z):
        return cls(z.real, z.imag)

    def value(self, dtype):
        out = np.empty(np.shape(self.re), dtype).view(type(self.re))
        out.real, out.imag = self.re, self.im
        return out

    def __add__(self, b):
        if isinstance(b, _Complex):
            return _Complex(self.re + b.re, self.im + b.im)
        return _Complex(self.re + b, self.im)  # a real epsilon

    def __sub__(self, b):
        return _Complex(self.re - b.re, self.im - b.im)

    def __mul__(self, b):
        return _Complex(self.re * b.re - self.im * b.im, self.re * b.im + self.im * b.re)

    def __rmul__(self, r):  # a real hyperparameter scales both parts
        return _Complex(r * self.re, r * self.im)

    def __truediv__(self, b):
        """Smith's method, as rmsprop_math's operator/."""
        a = self
        with np.errstate(all="ignore"):
            r1 = b.im / b.re
            d1 = b.re + b.im * r1
            r2 = b.re / b.im
            d2 = b.re * r2 + b.im
            by_re = np.abs(b.re) >= np.abs(b.im)
            return _Complex(_where(by_re, (a.re + a.im * r1) / d1, (a.re * r2 + a.im) / d2),
                            _where(by_re, (a.im - a.re * r1) / d1, (a.im * r2 - a.re) / d2))

    def abs(self):
        re, im = np.abs(self.re), np.abs(self.im)
        big, small = _where(re < im, im, re), _where(re < im, re, im)
        with np.errstate(all="ignore"):
            ratio = small / big
            scaled = big * np.sqrt(1 + ratio * ratio)
            special = (big == 0) | ~(big - big == 0)
        return _where(special, big + small, scaled)

    def sqrt(self):
        """The principal root, as rmsprop_math's Sqrt(Complex)."""
        re, im = self.re, self.im
        with np.errstate(all="ignore"):
            w = np.sqrt((np.abs(re) + self.abs()) * re.dtype.type(0.5))
            right = (w, im / (2 * w))
            left = (np.abs(im) / (2 * w), _where(np.signbit(im), -w, w))
        zero = (re == 0) & (im == 0)
        nonnegative = re >= 0
        return _Complex(_where(zero, np.zeros_like(re), _where(nonnegative, right[0], left[0])),
                        _where(zero, im, _where(nonnegative, right[1], left[1])))


def _where(condition, a, b):
    # np.where returns a plain array; keep the operands' array class.
    return np.where(condition, a, b).view(type(a))


def _non_negative(x):
    if isinstance(x, _Complex):
        return x
    # np.where is no ufunc: keep x's array type (tests/fuzz_support.py's
    # flush-to-zero arrays), or the next operations would run unflushed.
    out = np.where(x < 0, x.dtype.type(0), x).astype(x.dtype)
    return out.view(type(x)) if isinstance(x, np.ndarray) else out


def _sqrt(x):
    return x.sqrt() if isinstance(x, _Complex) else np.sqrt(x)


def rmsprop_step(var, ms, mg, mom, grad, lr, rho, momentum, epsilon, compute_dtype=np.float64,
                 epsilon_after_sqrt=False):
    """One dense step. mg / mom are None when absent. Returns new (var, ms, mg, mom)
    in the storage dtype of var. epsilon goes under the root, or after it.
    Hyperparameters are real; for complex variables g^2 is g*g and the root
    the principal one."""
    c = np.dtype(compute_dtype)
    r = np.zeros((), c).real.dtype.type  # the real type of the compute type
    # Arrays of the compute type; complex ones as _Complex.
    load = (lambda x: _Complex.of(x.astype(c))) if c.kind == "c" else (lambda x: x.astype(c))
    storage = var.dtype
    g = load(grad)
    lr_, rho_, one_minus_rho = r(lr), r(rho), r(1.0 - float(rho))
    momentum_ = r(momentum)
    eps_in, eps_after = (r(0), r(epsilon)) if epsilon_after_sqrt else (r(epsilon), r(0))
    ms_ = load(ms)
    ms_ = rho_ * ms_ + one_minus_rho * (g * g)
    if mg is not None:
        mg_ = load(mg)
        mg_ = rho_ * mg_ + one_minus_rho * g
        # rmsprop_math::NonNegative: a negative variance's root is of 0.
        denom = _non_negative(ms_ - mg_ * mg_ + eps_in)
    else:
        mg_ = None
        denom = ms_ + eps_in
    step = (lr_ * g) / (_sqrt(denom) + eps_after)
    if mom is not None:
        mom_ = momentum_ * load(mom) + step
        delta = mom_
    else:
        mom_ = None
        delta = step
    var_ = load(var) - delta

    def cast(x):
        if x is None:
            return None
        return canonical_nan(x.value(c) if isinstance(x, _Complex) else x).astype(storage)
    return cast(var_), cast(ms_), cast(mg_), cast(mom_)


def canonical_nan(x):
    """NaNs as the kernels store them (rmsprop_math.h's CanonicalNaN): np.nan,
    positive with only the quiet bit set, part by part for complex values."""
    x = np.array(x, copy=True)
    parts = (x.real, x.imag) if x.dtype.kind == "c" else (x,)
    for part in parts:
        part[np.isnan(part)] = np.nan
    return x


def sparse_rmsprop_step(var, ms, mg, mom, grad, indices, lr, rho, momentum, epsilon,
                        compute_dtype=np.float64, epsilon_after_sqrt=False):
    """Row-wise step: duplicate indices summed in position order first, rows
    not named untouched."""
    c = np.dtype(compute_dtype).type
    var, ms = var.copy(), ms.copy()
    mg = None if mg is None else mg.copy()
    mom = None if mom is None else mom.copy()
    indices = np.asarray(indices)
    for row in sorted(set(indices.tolist())):
        positions = np.nonzero(indices == row)[0]
        summed = grad[positions[0]].astype(c)
        for p in positions[1:]:
            if np.dtype(c).kind == "c":
                summed = (_Complex.of(summed) + _Complex.of(grad[p].astype(c))).value(c)
            else:
                summed = summed + grad[p].astype(c)
        new = rmsprop_step(var[row], ms[row], None if mg is None else mg[row],
                           None if mom is None else mom[row], summed,
                           lr, rho, momentum, epsilon, compute_dtype, epsilon_after_sqrt)
        var[row], ms[row] = new[0], new[1]
        if mg is not None:
            mg[row] = new[2]
        if mom is not None:
            mom[row] = new[3]
    return var, ms, mg, mom


NUMPY_DTYPES = {
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
    "float32": np.float32,
    "float64": np.float64,
    "complex64": np.complex64,
    "complex128": np.complex128,
}


def rmsprop_step_with_extras(var, ms, mg, mom, ema, grad, lr, rho, momentum, epsilon, *,
                             grad_divisor=1.0, clip_multiplier=1.0, clip_divisor=1.0,
                             clip_value=np.inf, weight_decay=None, ema_momentum=0.0,
                             compute_dtype=np.float64):
    """rmsprop_math.h's UpdateElement with the extras, for real dtypes: Keras's steps
    around the update (see there), everything in the compute type until the
    store. Returns new (var, ms, mg, mom, ema); ema None when absent."""
    c = np.dtype(compute_dtype).type
    storage = var.dtype

    def wide(x):
        return None if x is None else x.astype(c)
    g = ((grad.astype(c) / c(grad_divisor)) * c(clip_multiplier)) / c(clip_divisor)
    g = np.minimum(np.maximum(g, c(-clip_value)), c(clip_value))  # NaN stays NaN
    v = var.astype(c)
    if weight_decay is not None:
        v = v - v * c(weight_decay) * c(lr)
    v, ms_, mg_, mom_ = rmsprop_step(v, wide(ms), wide(mg), wide(mom), g, lr, rho, momentum,
                                     epsilon, compute_dtype)
    ema_ = None
    if ema is not None:
        m = c(ema_momentum)
        ema_ = canonical_nan(m * ema.astype(c) + (c(1) - m) * v)
    return tuple(None if x is None else x.astype(storage) for x in (v, ms_, mg_, mom_, ema_))


# Compact state (rmsprop_op/compact_state.py), re-derived from its
# description rather than from its code.

SMALLEST_NORMAL = 2.0 ** -126


def compact_index(magnitude):
    """The index of float32 magnitudes (float64 array, >= 0) at 3 mantissa
    bits: 8 * (biased exponent) + the mantissa in eighths, rounded to
    nearest, ties away from zero (below the normal floats, the magnitude in
    steps of 2**-129, rounded the same way)."""
    magnitude = np.asarray(magnitude, np.float64)
    fraction, exponent = np.frexp(magnitude)  # magnitude = fraction * 2**exponent, fraction in [0.5, 1)
    eighths = np.floor((fraction * 2 - 1) * 8 + 0.5)
    normal = 8 * (exponent - 1 + 127) + eighths
    below = np.floor(magnitude * 2.0 ** 129 + 0.5)
    return np.where(magnitude >= SMALLEST_NORMAL, normal, below).astype(np.int64)


def compact_index_value(index):
    """The float32 an index stands for (>= 8): 2**(index // 8 - 127) * (1 + (index % 8) / 8)."""
    index = np.asarray(index, np.int64)
    value = np.ldexp(1 + (index % 8) / 8.0, (index // 8 - 127).astype(np.int32))
    return np.minimum(value, np.finfo(np.float32).max).astype(np.float32)


def _is_scaled(scale):
    return bool(SMALLEST_NORMAL <= scale < np.inf)


def _quotient(magnitude, scale):
    """x = magnitude / scale as the format computes it: magnitude / 2**p
    exactly (0 below the normal floats), times fl(1 / f), for scale = 2**p * f."""
    fraction, exponent = np.frexp(np.float32(scale))  # scale = fraction * 2**exponent
    p, f = int(exponent) - 1, np.float32(fraction * 2)
    magnitude = np.where(magnitude >= SMALLEST_NORMAL, magnitude, 0).astype(np.float32)
    y = np.ldexp(magnitude, -p).astype(np.float32)
    y = np.where(y >= SMALLEST_NORMAL, y, np.float32(0))
    return (y * (np.float32(1) / f)).astype(np.float32)


def _flush(x):
    """float32 results below the normal floats flushed to (signed) zero."""
    return np.where(np.abs(x) < SMALLEST_NORMAL, np.copysign(np.float32(0), x), x).astype(np.float32)


def _layout(shape):
    rows = shape[0] if len(shape) else 1
    columns = int(np.prod(shape[1:], dtype=np.int64))
    rows_per_block = max(1, 256 // max(columns, 1))
    columns_per_block = min(columns, 256)
    return rows, columns, rows_per_block, columns_per_block


def compact_blocks(shape):
    """Every block of a variable of `shape` as (row block, column block,
    row slice, column slice) of its [rows, columns] view."""
    rows, columns, rpb, cpb = _layout(shape)
    for rb, r in enumerate(range(0, rows, rpb)):
        for cb, c in enumerate(range(0, columns, max(cpb, 1))):
            yield rb, cb, slice(r, min(r + rpb, rows)), slice(c, min(c + cpb, columns))


def compact_quantize(values, signed):
    """(codes, scales) of float32 `values` (see compact_state)."""
    shape = values.shape
    rows, columns, rpb, cpb = _layout(shape)
    view = values.reshape(rows, columns)
    top = 127 if signed else 255
    one = 127 * 8  # the index of x = 1
    scales = np.zeros((-(-rows // rpb), -(-columns // max(cpb, 1))), np.float32)
    codes = np.zeros((rows, columns), np.int8 if signed else np.uint8)
    for rb, cb, rs, cs in compact_blocks(shape):
        block = view[rs, cs]
        scale = np.float32(np.nan) if np.isnan(block).any() else np.abs(block).max()
        scales[rb, cb] = scale
        negative = np.signbit(block)
        if _is_scaled(scale):
            x = _quotient(np.abs(block), scale)
            magnitude = np.maximum(compact_index(x) - (one - top), 0)
            if signed:
                # Between 0 and code 1: the nearer (ties away from zero).
                half_of_one = np.float64(compact_index_value(one - top + 1)) / 2
                magnitude = np.where((magnitude == 0) & (x >= half_of_one), 1, magnitude)
        else:
            magnitude = np.zeros(block.shape, np.int64)
        if signed:
            codes[rs, cs] = np.where(negative, -magnitude, magnitude)
        else:
            positive = ~negative & (block != 0) & ~np.isnan(block)
            codes[rs, cs] = np.where(positive, np.maximum(magnitude, 1), 0)
    return codes.reshape(shape), scales


def compact_dequantize(codes, scales, signed):
    shape = codes.shape
    rows, columns, _, _ = _layout(shape)
    top = 127 if signed else 255
    one = 127 * 8
    c = codes.reshape(rows, columns).astype(np.int64)
    magnitude = np.minimum(np.abs(c), 127) if signed else c
    x = np.where(magnitude > 0, compact_index_value(np.maximum(magnitude, 1) + one - top), 0)
    x = np.where(c < 0, -x, x).astype(np.float32)
    values = np.zeros((rows, columns), np.float32)
    for rb, cb, rs, cs in compact_blocks(shape):
        scale = scales[rb, cb]
        if not _is_scaled(scale):
            values[rs, cs] = np.float32(0) if np.isfinite(scale) else np.float32(np.nan)
            continue
        values[rs, cs] = _flush((x[rs, cs] * scale).astype(np.float32))
    return values.reshape(shape)
