"""What the Keras 3 differential harness (tests/test_differential.py) draws:
an optimizer configuration, as plain data, and a call pattern."""
import keras
import tensorflow as tf
from hypothesis import strategies as st

DTYPES = ["float32", "float32", "float64", "float16", "bfloat16"]
SHAPES = [(), (0,), (3,), (4, 3), (2, 0), (5, 1, 2)]
# Gradient kinds; "numpy" and "list" are eager only (a tf.function would
# retrace on every Python value).
# "sparse": some rows, duplicates possible (those variables are left
# uncompared); "sparse_all_rows": every row once; "sparse_duplicates": every
# row, some twice, which stock gets as the dense gradient (stock Keras 3
# squares each duplicate slice apart, not their sum; see tolerance_of).
KINDS = ["dense", "dense", "dense", "none", "sparse", "sparse_all_rows", "sparse_duplicates",
         "other_dtype", "numpy", "list"]


# -- the configuration ------------------------------------------------------

@st.composite
def configurations(draw):
    """Constructor arguments as plain data (`make_optimizer` builds them)."""
    config = dict(
        learning_rate=draw(st.sampled_from(
            [("float", 0.01), ("float", 0.1), ("schedule", 0.1), ("callable_float", 0.05),
             ("callable_tensor", 0.05)])),
        rho=draw(st.sampled_from([0.9, 0.5, 0.0, 0.99])),
        momentum=draw(st.sampled_from([0.0, 0.0, 0.5, 0.9])),
        epsilon=draw(st.sampled_from([1e-7, 1e-3, 1.0])),
        centered=draw(st.booleans()),
    )
    clipping = draw(st.sampled_from(
        [{}, {}, {"clipnorm": 0.5}, {"clipnorm": 2.0}, {"global_clipnorm": 1.0},
         {"clipvalue": 0.1}, {"clipnorm": 1.0, "clipvalue": 0.1}]))
    config.update(clipping)
    config["weight_decay"] = draw(st.sampled_from(
        [None, None, ("float", 0.01), ("float", 0.2), ("variable", 0.05)]))
    config["loss_scale_factor"] = draw(st.sampled_from([None, None, 8.0, 0.5]))
    if draw(st.booleans()):
        config["use_ema"] = True
        config["ema_momentum"] = draw(st.sampled_from([0.9, 0.99]))
        config["ema_overwrite_frequency"] = draw(st.sampled_from([None, 2]))
    config["gradient_accumulation_steps"] = draw(st.sampled_from([None, None, None, 2]))
    if draw(st.booleans()):
        config["name"] = "opt"
    return config


def _learning_rate(spec):
    kind, value = spec
    if kind == "float":
        return value
    if kind == "schedule":
        return keras.optimizers.schedules.ExponentialDecay(value, decay_steps=1, decay_rate=0.5)
    if kind == "callable_float":
        return lambda: value
    return lambda: tf.constant(value)


def make_optimizer(cls, config):
    """The optimizer, and the variables among its arguments (the run changes
    them between steps, as a user would)."""
    kwargs = dict(config)
    kwargs["learning_rate"] = _learning_rate(config["learning_rate"])
    hyper_variables = []
    decay = config["weight_decay"]
    if decay is not None:
        kind, value = decay
        kwargs["weight_decay"] = tf.Variable(value) if kind == "variable" else value
        if kind == "variable":
            hyper_variables.append(kwargs["weight_decay"])
    return cls(**kwargs), hyper_variables


# -- the call pattern -------------------------------------------------------

def _num_devices():
    return len(tf.config.list_logical_devices("CPU"))


@st.composite
def call_patterns(draw):
    mode = draw(st.sampled_from(["eager", "eager", "function", "function", "xla"]))
    kinds = KINDS if mode == "eager" else KINDS[:-2]
    variables = draw(st.lists(st.tuples(st.sampled_from(DTYPES), st.sampled_from(SHAPES),
                                        st.integers(0, _num_devices() - 1)),
                              min_size=1, max_size=4))
    api = draw(st.sampled_from(["apply", "apply", "apply_built", "apply_gradients", "minimize"]))
    order = list(range(len(variables)))
    # apply(grads) on a built optimizer takes one gradient per tracked
    # variable, in the order it was built with; minimize's tape sums the
    # gradients of a variable listed twice (two sparse terms would become
    # one gradient with duplicate rows).
    if api != "apply_built":
        if draw(st.booleans()):
            order = draw(st.permutations(order))
        if api != "minimize" and draw(st.integers(0, 5)) == 0:
            order.append(draw(st.sampled_from(order)))  # one variable twice
    grad_kinds = []
    for position in order:
        _, shape, _ = variables[position]
        kind = draw(st.sampled_from(kinds))
        if kind.startswith("sparse") and (not shape or shape[0] == 0):
            kind = "dense"
        grad_kinds.append(kind)
    return dict(
        mode=mode,
        variables=variables,
        order=order,
        grad_kinds=grad_kinds,
        api=api,
        pass_variables_as=draw(st.sampled_from(["list", "tuple", "iterator"])),
        build_first=draw(st.booleans()),
        steps=draw(st.integers(1, 4)),
        reload_after=draw(st.sampled_from([None, None, None, 1])),
        seed=draw(st.integers(0, 2 ** 16)),
    )
