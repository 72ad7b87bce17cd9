"""NumPy references for the RMSProp update.

`rmsprop_step` mirrors rmsprop_op/cc/kernels/rmsprop_math.h line for line.
With compute_dtype=float64 it is the exact formula; with the op's own compute
type (float32 for half, bfloat16 and float32 variables) it reproduces the op
bit for bit, since NumPy rounds each +, *, / and sqrt as the kernels do.
"""
import ml_dtypes
import numpy as np


def compute_dtype_of(dtype):
    return np.float64 if np.dtype(dtype) == np.float64 else np.float32


def rmsprop_step(var, ms, mg, mom, grad, lr, rho, momentum, epsilon, compute_dtype=np.float64,
                 epsilon_after_sqrt=False):
    """One dense step. mg / mom are None when absent. Returns new (var, ms, mg, mom)
    in the storage dtype of var. epsilon goes under the root, or after it."""
    c = np.dtype(compute_dtype).type
    storage = var.dtype
    g = grad.astype(c)
    lr_, rho_, one_minus_rho = c(lr), c(rho), c(1.0 - float(rho))
    momentum_ = c(momentum)
    eps_in, eps_after = (c(0), c(epsilon)) if epsilon_after_sqrt else (c(epsilon), c(0))
    ms_ = ms.astype(c)
    ms_ = rho_ * ms_ + one_minus_rho * (g * g)
    if mg is not None:
        mg_ = mg.astype(c)
        mg_ = rho_ * mg_ + one_minus_rho * g
        denom = ms_ - mg_ * mg_
    else:
        mg_ = None
        denom = ms_
    step = (lr_ * g) / (np.sqrt(denom + eps_in) + eps_after)
    if mom is not None:
        mom_ = momentum_ * mom.astype(c) + step
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
}
