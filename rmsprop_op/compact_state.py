"""Compact optimizer state: RMSprop's slots in bfloat16, or block-wise in 8 bits.

The formats, written once; the fused kernels and `plain_tf` follow them, and
tests/reference.py mirrors them in NumPy.

bfloat16: a slot is a bfloat16 variable of the variable's shape. It is read
as float32; the new float32 value is rounded to nearest (ties to even), or
stochastically: a uniform 16-bit number is added to the float32 bits below
bfloat16's, which are then dropped, so the expected stored value is the
float32 value.

int8, block-wise with a dynamic map (Dettmers et al., "8-bit Optimizers via
Block-wise Quantization", 2022):
- The variable is viewed as [rows, columns]: rows = shape[0] (the rows a
  sparse update indexes) and columns the product of the other dimensions. A block is
  max(1, 256 // columns) whole rows when a row has at most 256 elements,
  else 256 consecutive elements of one row. So every block lies within whole
  rows, and a sparse update re-quantizes only the blocks of its rows.
- Each block keeps one float32 scale, the largest magnitude of its values
  (exactly), and one code per element: the entry of a map of 256 (unsigned)
  or 255 (signed) values in [-1, 1] nearest to x = value / scale, found by
  arithmetic (`code_regions`) rather than by search, so that a vectorized
  kernel computes it without table lookups. In float32: the region d of
  |x| is the number of thresholds 10**-1, 10**-2, ... above it, and the
  code's magnitude is bases[d] + rint(|x| * slopes[d] - offsets[d]) (a
  product, then a difference, each rounded; rint to even). That is the
  nearest entry except within about 1e-5 of a step of a midpoint.
- The mean square (never negative) is stored on the unsigned map, uint8 codes
  0..255, a positive value never on code 0 (even where value / scale
  underflows); momentum and the mean gradient on
  the signed map, int8 codes -127..127 (sign and magnitude; -128 reads as -127).
- The maps are dynamic: the number of leading zero bits of a code's magnitude
  is a decimal exponent e, the remaining bits a linear fraction, so a map
  spans 1 down to 1e-7 (unsigned) or 1e-6 (signed) with about 2-3 significant
  digits near the top of each decade.
- A block that holds a NaN has a NaN scale; one that holds an infinity has
  an infinite scale and codes 0. Either reads back as NaN.

Variables keep full-precision state (their own dtype, as without this option)
when they are not float32 or have fewer than MIN_ELEMENTS elements: their
state is small, and often the most sensitive (biases, normalization).
"""
import math

import numpy as np
import tensorflow as tf

FORMATS = ("bfloat16", "int8")
BLOCK_SIZE = 256
MIN_ELEMENTS = 4096


def dynamic_map(bits):
    """The 2**bits non-negative values of the dynamic map, ascending, as float32:
    0, then for each exponent e = bits-1 .. 0 the 2**(bits-1-e) values
    10**-e * (0.1 + 0.9 * i / 2**(bits-1-e)), i = 1 .. 2**(bits-1-e)."""
    values = [0.0]
    for e in range(bits - 1, -1, -1):
        steps = 2 ** (bits - 1 - e)
        values += [10.0 ** -e * (0.1 + 0.9 * i / steps) for i in range(1, steps + 1)]
    table = np.array(values, dtype=np.float64)
    assert np.all(np.diff(table) > 0) and table[-1] == 1.0
    return table.astype(np.float32)


UNSIGNED_MAP = dynamic_map(8)        # uint8 code c -> UNSIGNED_MAP[c]
SIGNED_MAGNITUDES = dynamic_map(7)   # int8 code c -> sign(c) * SIGNED_MAGNITUDES[|c|]


def code_regions(bits):
    """(thresholds, slopes, offsets, bases) of the dynamic map of `bits` bits:
    float32 thresholds 10**-1 .. 10**-(bits-1), and per region d (0 .. bits-1)
    the float32 slope and offset and the integer base with which
    bases[d] + rint(x * slopes[d] - offsets[d]) is x's code. Region d < bits-1
    is the decade [10**-(d+1), 10**-d], whose 2**k entries (k = bits-1-d) sit
    at fractions i / 2**k of [0.1, 1] (times 10**-d), i = 1 .. 2**k, and whose
    i = 0 is the previous decade's top code, bases[d] = 2**k - 1; the last
    region is [0, 10**-(bits-1)], codes 0 and 1."""
    thresholds = np.array([10.0 ** -(d + 1) for d in range(bits - 1)], np.float32)
    slopes, offsets, bases = [], [], []
    for d in range(bits - 1):
        steps = 2 ** (bits - 1 - d)
        slopes.append(10.0 ** d * steps / 0.9)
        offsets.append(steps / 9.0)
        bases.append(steps - 1)
    slopes.append(10.0 ** (bits - 1))
    offsets.append(0.0)
    bases.append(0)
    return (thresholds, np.array(slopes, np.float32), np.array(offsets, np.float32),
            np.array(bases, np.int32))


UNSIGNED_REGIONS = code_regions(8)
SIGNED_REGIONS = code_regions(7)


def _magnitude_codes(x, regions):
    """The codes of magnitudes x >= 0 (float32 tensor) by `regions`."""
    thresholds, slopes, offsets, bases = regions
    region = tf.zeros_like(x, tf.int32)
    for threshold in thresholds:
        region += tf.cast(x < threshold, tf.int32)
    step = tf.math.rint(x * tf.gather(slopes, region) - tf.gather(offsets, region))
    return tf.gather(bases, region) + tf.cast(step, tf.int32)


def block_layout(shape):
    """(rows, columns, rows per block, columns per block) of a variable's shape."""
    shape = [int(d) for d in shape]
    rows = shape[0] if shape else 1
    columns = math.prod(shape[1:])
    rows_per_block = max(1, BLOCK_SIZE // max(columns, 1))
    columns_per_block = min(columns, BLOCK_SIZE)
    return rows, columns, rows_per_block, columns_per_block


def scales_shape(shape):
    """The shape of a slot's scales: [row blocks, column blocks]."""
    rows, columns, rows_per_block, columns_per_block = block_layout(shape)
    return [-(-rows // rows_per_block), -(-columns // max(columns_per_block, 1))]


def uses_compact_state(variable, state_dtype):
    """True when `variable` keeps its slots in `state_dtype` (see the module)."""
    shape = tf.TensorShape(variable.shape)
    return (state_dtype is not None and tf.as_dtype(variable.dtype) == tf.float32
            and shape.is_fully_defined() and shape.num_elements() >= MIN_ELEMENTS)


def check_format(state_dtype, stochastic_rounding=False):
    """`state_dtype` as one of FORMATS or None; refuses anything else."""
    if state_dtype is not None:
        name = getattr(state_dtype, "name", state_dtype)
        if name not in FORMATS:
            raise ValueError(f"state_dtype must be None, 'bfloat16' or 'int8', got {state_dtype!r}")
        state_dtype = name
    if stochastic_rounding and state_dtype != "bfloat16":
        raise ValueError("stochastic_rounding=True needs state_dtype='bfloat16' "
                         f"(state_dtype is {state_dtype!r})")
    return state_dtype


# The formats in TensorFlow ops (the plain-TF path, and the reference the
# fused kernels are tested against).

def _blocks(values, shape):
    """`values` (the variable's shape) as [row blocks, column blocks, elements
    of a block], zero-padded."""
    rows, columns, rpb, cpb = block_layout(shape)
    row_blocks, column_blocks = scales_shape(shape)
    x = tf.reshape(values, [rows, columns])
    x = tf.pad(x, [[0, row_blocks * rpb - rows], [0, column_blocks * cpb - columns]])
    x = tf.reshape(x, [row_blocks, rpb, column_blocks, cpb])
    return tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [row_blocks, column_blocks, rpb * cpb])


def _per_element(block_values, shape):
    """[row blocks, column blocks] (one value per block) as the variable's shape."""
    rows, columns, rpb, cpb = block_layout(shape)
    x = tf.repeat(tf.repeat(block_values, rpb, axis=0), cpb, axis=1)
    return tf.reshape(x[:rows, :columns], shape)


def block_scales(values, shape):
    """Each block's largest magnitude; NaN for a block that holds a NaN."""
    blocks = _blocks(values, shape)
    largest = tf.reduce_max(tf.abs(blocks), axis=-1)
    has_nan = tf.reduce_any(tf.math.is_nan(blocks), axis=-1)
    return tf.where(has_nan, tf.constant(np.nan, tf.float32), largest)


def quantize(values, signed):
    """(codes, scales) of float32 `values`."""
    shape = values.shape
    scales = block_scales(values, shape)
    scale = _per_element(scales, shape)
    x = tf.where(scale > 0, values / tf.where(scale > 0, scale, 1.0), 0.0)
    # The mean square's code is of x, a signed slot's of |x|; NaN (inf / inf),
    # 0 and (on the unsigned map) negative x code 0.
    magnitude = tf.abs(x) if signed else x
    counted = magnitude > 0
    magnitude = _magnitude_codes(tf.where(counted, magnitude, 0.0),
                                 SIGNED_REGIONS if signed else UNSIGNED_REGIONS)
    magnitude = tf.where(counted, magnitude, 0)
    if signed:
        codes = tf.cast(tf.where(x < 0, -magnitude, magnitude), tf.int8)
    else:
        # On the value, not the quotient, which may underflow to 0.
        codes = tf.where(values > 0, tf.maximum(magnitude, 1), magnitude)
        codes = tf.cast(codes, tf.uint8)
    return codes, scales


def dequantize(codes, scales, signed):
    """float32 values of (codes, scales)."""
    shape = codes.shape
    if signed:
        c = tf.cast(codes, tf.int32)
        magnitude = tf.gather(tf.constant(SIGNED_MAGNITUDES), tf.minimum(tf.abs(c), 127))
        table_values = tf.where(c < 0, -magnitude, magnitude)
    else:
        table_values = tf.gather(tf.constant(UNSIGNED_MAP), tf.cast(codes, tf.int32))
    return table_values * _per_element(scales, shape)


def round_to_bfloat16(values, noise=None):
    """float32 -> bfloat16: to nearest, or with `noise` (uint16 values as
    int32, the shape of `values`) added below bfloat16's bits first. Inf
    and NaN round to nearest (they have no bits to round)."""
    if noise is None:
        return tf.cast(values, tf.bfloat16)
    bits = tf.bitcast(values, tf.uint32)
    rounded = tf.bitwise.bitwise_and(bits + tf.cast(noise, tf.uint32), tf.constant(0xFFFF0000, tf.uint32))
    stochastic = tf.cast(tf.bitcast(rounded, tf.float32), tf.bfloat16)  # exact: low bits are 0
    return tf.where(tf.math.is_finite(values), stochastic, tf.cast(values, tf.bfloat16))


class Int8State:
    """One slot kept block-wise in 8 bits: `codes` (uint8 for the mean
    square, int8 for momentum and the mean gradient, the variable's shape)
    and `scales` (float32, `scales_shape`), both tf.Variables."""

    kind = "int8"

    def __init__(self, codes, scales):
        self.codes, self.scales = codes, scales
        self.signed = codes.dtype == tf.int8

    @property
    def device(self):
        return self.codes.device

    @property
    def variables(self):
        return (self.codes, self.scales)

    def read(self):
        return dequantize(self.codes.read_value(), self.scales.read_value(), self.signed)

    def write(self, values, touched_rows=None):
        """Stores float32 `values`; with `touched_rows` (bool per row), only
        the blocks of those rows change."""
        codes, scales = quantize(values, self.signed)
        if touched_rows is not None:
            shape = values.shape
            rows, _, rpb, _ = block_layout(shape)
            row_blocks = scales.shape[0]
            padded = tf.pad(touched_rows, [[0, row_blocks * rpb - rows]])
            block_touched = tf.reduce_any(tf.reshape(padded, [row_blocks, rpb]), axis=1)
            scales = tf.where(block_touched[:, None], scales, self.scales.read_value())
            element_touched = _per_element(
                tf.broadcast_to(block_touched[:, None], scales.shape), shape)
            codes = tf.where(element_touched, codes, self.codes.read_value())
        return tf.group(self.codes.assign(codes), self.scales.assign(scales))


class Bfloat16State:
    """One slot kept in bfloat16 (`variable`); `noise_seed` (a function of
    nothing giving a [2] int32 stateless seed, or None) selects stochastic
    rounding."""

    kind = "bfloat16"

    def __init__(self, variable, noise_seed=None):
        self.variable, self.noise_seed = variable, noise_seed

    @property
    def device(self):
        return self.variable.device

    @property
    def variables(self):
        return (self.variable,)

    def read(self):
        return tf.cast(self.variable.read_value(), tf.float32)

    def write(self, values, touched_rows=None):
        noise = None
        if self.noise_seed is not None:
            noise = tf.random.stateless_uniform(tf.shape(values), self.noise_seed(), minval=0,
                                                maxval=1 << 16, dtype=tf.int32)
        new = round_to_bfloat16(values, noise)
        if touched_rows is not None:
            touched = tf.reshape(touched_rows, [-1] + [1] * (len(values.shape) - 1))
            new = tf.where(touched, new, self.variable.read_value())
        return self.variable.assign(new)


def is_compact(slot):
    return isinstance(slot, (Int8State, Bfloat16State))
