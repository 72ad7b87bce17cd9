"""NumPy references for the RMSProp update.

`rmsprop_step` mirrors rmsprop_op/cc/kernels/rmsprop_math.h line for line.
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


def _is_complex(x):
    return np.iscomplexobj(x)


# rmsprop_math::Complex, part by part, so that the reference rounds as the
# kernels do (NumPy's own complex division and sqrt use other algorithms).
def _mul(a, b):
    if not _is_complex(a):
        return a * b
    return _complex(a.real * b.real - a.imag * b.imag, a.real * b.imag + a.imag * b.real)


def _scale(r, z):
    """A real hyperparameter times z."""
    return _complex(r * z.real, r * z.imag) if _is_complex(z) else r * z


def _add_real(z, r):
    return _complex(z.real + r, z.imag) if _is_complex(z) else z + r


def _complex(re, im):
    out = np.empty(np.shape(re), np.result_type(re, np.complex64))
    out.real, out.imag = re, im
    return out


def _div(a, b):
    """Smith's method, as rmsprop_math's operator/."""
    if not _is_complex(a):
        return a / b
    with np.errstate(all="ignore"):
        by_re = np.abs(b.real) >= np.abs(b.imag)
        r1 = b.imag / b.real
        d1 = b.real + b.imag * r1
        q1 = _complex((a.real + a.imag * r1) / d1, (a.imag - a.real * r1) / d1)
        r2 = b.real / b.imag
        d2 = b.real * r2 + b.imag
        q2 = _complex((a.real * r2 + a.imag) / d2, (a.imag * r2 - a.real) / d2)
    return np.where(by_re, q1, q2)


def _abs(z):
    re, im = np.abs(z.real), np.abs(z.imag)
    big, small = np.where(re < im, im, re), np.where(re < im, re, im)
    with np.errstate(all="ignore"):
        ratio = small / big
        scaled = big * np.sqrt(1 + ratio * ratio)
        special = (big == 0) | ~(big - big == 0)
    return np.where(special, big + small, scaled)


def _sqrt(z):
    """The principal root, as rmsprop_math's Sqrt(Complex)."""
    if not _is_complex(z):
        return np.sqrt(z)
    half = z.real.dtype.type(0.5)
    with np.errstate(all="ignore"):
        w = np.sqrt((np.abs(z.real) + _abs(z)) * half)
        right = _complex(w, z.imag / (2 * w))
        left = _complex(np.abs(z.imag) / (2 * w), np.where(np.signbit(z.imag), -w, w))
    root = np.where(z.real >= 0, right, left)
    zero = (z.real == 0) & (z.imag == 0)
    return np.where(zero, _complex(np.zeros_like(z.real), z.imag), root)


def rmsprop_step(var, ms, mg, mom, grad, lr, rho, momentum, epsilon, compute_dtype=np.float64,
                 epsilon_after_sqrt=False):
    """One dense step. mg / mom are None when absent. Returns new (var, ms, mg, mom)
    in the storage dtype of var. epsilon goes under the root, or after it.
    Hyperparameters are real; for complex variables g^2 is g*g and the root
    the principal one."""
    c = np.dtype(compute_dtype).type
    r = np.zeros((), c).real.dtype.type  # the real type of the compute type
    storage = var.dtype
    g = grad.astype(c)
    lr_, rho_, one_minus_rho = r(lr), r(rho), r(1.0 - float(rho))
    momentum_ = r(momentum)
    eps_in, eps_after = (r(0), r(epsilon)) if epsilon_after_sqrt else (r(epsilon), r(0))
    ms_ = ms.astype(c)
    ms_ = _scale(rho_, ms_) + _scale(one_minus_rho, _mul(g, g))
    if mg is not None:
        mg_ = mg.astype(c)
        mg_ = _scale(rho_, mg_) + _scale(one_minus_rho, g)
        denom = ms_ - _mul(mg_, mg_)
    else:
        mg_ = None
        denom = ms_
    step = _div(_scale(lr_, g), _add_real(_sqrt(_add_real(denom, eps_in)), eps_after))
    if mom is not None:
        mom_ = _scale(momentum_, mom.astype(c)) + step
        delta = mom_
    else:
        mom_ = None
        delta = step
    var_ = var.astype(c) - delta
    cast = lambda x: None if x is None else x.astype(storage)
    return cast(var_), cast(ms_), cast(mg_), cast(mom_)


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
