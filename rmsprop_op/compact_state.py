"""Compact optimizer state: RMSprop's slots in bfloat16, or block-wise in 8 bits.

The formats, written once; the fused kernels and `plain_tf` follow them, and
tests/reference.py mirrors them in NumPy.

bfloat16: a slot is a bfloat16 variable of the variable's shape. It is read
as float32; the new float32 value is rounded to nearest (ties to even), or
stochastically: a uniform 16-bit number is added to the float32 bits below
bfloat16's, which are then dropped, so the expected stored value is the
float32 value.

int8, block-wise, as 8-bit floats of each value relative to its block's scale:
- The variable is viewed as [rows, columns]: rows = shape[0] (the rows a
  sparse update indexes) and columns the product of the other dimensions. A block is
  max(1, 256 // columns) whole rows when a row has at most 256 elements,
  else 256 consecutive elements of one row. So every block lies within whole
  rows, and a sparse update re-quantizes only the blocks of its rows.
- Each block keeps one float32 scale s, the largest magnitude of its values
  (exactly), and one code per element. A code's magnitude m stands for
  x = m's float (a float32 with 3 mantissa bits) in [0, 1]: m = 0 is 0, and
  m > 0 is the float32 whose bits are (1016 - top + m) << 20, where top is
  the largest code (255 for the mean square, 127 for momentum and the mean
  gradient): the top code is x = 1, and each code below is one step of an
  eighth of its binade less (code 1 is 1.25 * 2**-32 unsigned, 1.25 * 2**-16 signed;
  each x within 1/16 of itself, 3.1% to 6.25%). It reads as fl(x * s)
  (0 below the normal floats, as under flush-to-zero), so
  the largest value reads back exactly, and a block scaled as a whole (a
  decay) keeps its codes: its values decay as float32 values do.
- A value's x is |value| / s computed without a division per element: with
  s = 2**p * f (f in [1, 2)), y = |value| / 2**p exactly by its exponent
  field (0 where |value| or y is below the normal floats), then
  x = fl(y * fl(1 / f)). Its code is
  the nearest (ties away from zero), from x's bits:
  m = ((bits(x) + 2**19) >> 20) - (1016 - top) where that is positive;
  below, a signed slot's magnitude codes 1 from half of code 1's x on,
  else 0.
- The mean square (never negative) is stored as uint8 codes 0..255, a
  positive value never on code 0 (a NaN on code 0, whatever its sign bit); momentum and the mean gradient as int8
  codes -127..127 (sign and magnitude; the sign is the value's sign bit;
  -128 reads as -127).
- A block is scaled when its scale is a normal float32 (2**-126 <= scale <
  inf). An unscaled block codes 0 (1 for a positive mean square) and reads
  as 0, or as NaN where its scale is NaN or infinite: a block that holds a
  NaN has a NaN scale, one that holds an infinity an infinite scale.

Centered: the update reads a compact mean square as at least the mean
gradient's square (`consistent_mean_square`), in either format. The two are
stored and rounded apart, and a variance their rounding made negative would
divide by a zero root; from such state the update keeps ms >= mg**2.

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


MANTISSA_BITS = 3
UNSIGNED_TOP = 255  # the mean square's largest code
SIGNED_TOP = 127    # momentum's and the mean gradient's largest magnitude
_SHIFT = 23 - MANTISSA_BITS
_ONE_INDEX = 127 << MANTISSA_BITS  # the index of x = 1.0
_ONE_BITS = 0x3F800000
_SMALLEST_NORMAL_BITS = 0x00800000
_INFINITY_BITS = 0x7F800000


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


def _is_scaled(scales):
    """Blocks whose scale is a normal float32 (in bits: sign clear, exponent 1..254)."""
    bits = tf.bitcast(scales, tf.int32)
    return (bits >= _SMALLEST_NORMAL_BITS) & (bits < _INFINITY_BITS)


def _quotient_bits(magnitude_bits, scales, shape):
    """x = |value| / scale as int32 bits, by the module's arithmetic: the
    scale's power of two taken off the exponent field (0 where the magnitude
    or the quotient is below the normal floats), then times fl(1 / its
    fraction)."""
    scale_bits = tf.bitcast(scales, tf.int32)
    exponent_bits = tf.bitwise.left_shift(tf.bitwise.right_shift(scale_bits, 23) - 127, 23)
    fraction = tf.bitcast(tf.bitwise.bitwise_or(tf.bitwise.bitwise_and(scale_bits, 0x007FFFFF),
                                                _ONE_BITS), tf.float32)
    reciprocal = 1.0 / fraction
    y = magnitude_bits - _per_element(exponent_bits, shape)
    normal = (magnitude_bits >= _SMALLEST_NORMAL_BITS) & (y >= _SMALLEST_NORMAL_BITS)
    y_value = tf.where(normal, tf.bitcast(y, tf.float32), 0.0)
    return tf.bitcast(y_value * _per_element(reciprocal, shape), tf.int32)


def quantize(values, signed):
    """(codes, scales) of float32 `values`."""
    shape = values.shape
    scales = block_scales(values, shape)
    top = SIGNED_TOP if signed else UNSIGNED_TOP
    bits = tf.bitcast(values, tf.int32)
    x_bits = _quotient_bits(tf.bitwise.bitwise_and(bits, 0x7FFFFFFF), scales, shape)
    index = tf.bitwise.right_shift(x_bits + (1 << (_SHIFT - 1)), _SHIFT)
    magnitude = index - (_ONE_INDEX - top)
    if signed:
        # Below code 1's binade: 1 from half of code 1's x on.
        half = tf.bitwise.left_shift(_ONE_INDEX - top + 1, _SHIFT) - (1 << 23)
        magnitude = tf.maximum(magnitude, tf.cast(x_bits >= half, tf.int32))
    magnitude = tf.where(_per_element(_is_scaled(scales), shape), tf.maximum(magnitude, 0), 0)
    if signed:
        codes = tf.cast(tf.where(bits < 0, -magnitude, magnitude), tf.int8)
    else:
        positive = (bits > 0) & (bits <= _INFINITY_BITS)  # not NaN, whatever its sign bit
        codes = tf.cast(tf.where(positive, tf.maximum(magnitude, 1), 0), tf.uint8)
    return codes, scales


def dequantize(codes, scales, signed):
    """float32 values of (codes, scales)."""
    shape = codes.shape
    c = tf.cast(codes, tf.int32)
    top = SIGNED_TOP if signed else UNSIGNED_TOP
    magnitude = tf.minimum(tf.abs(c), SIGNED_TOP) if signed else c
    x_bits = tf.bitwise.left_shift(magnitude + (_ONE_INDEX - top), _SHIFT)
    x = tf.bitcast(tf.where(magnitude > 0, x_bits, 0), tf.float32)
    if signed:
        x = tf.where(c < 0, -x, x)
    scale = _per_element(scales, shape)
    unscaled = tf.where(tf.math.is_finite(scale), 0.0, np.float32(np.nan))
    return tf.where(_per_element(_is_scaled(scales), shape), x * scale, unscaled)


def consistent_mean_square(ms, mg):
    """The mean square a centered update reads from compact state: at least
    mg**2 (NaN stays NaN)."""
    square = mg * mg
    return tf.where(ms < square, square, ms)


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
