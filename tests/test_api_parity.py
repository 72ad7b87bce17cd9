"""keras_optimizer.RMSprop side by side with keras.optimizers.RMSprop: the
same constructor, public surface, config, slots, naming and behaviour of the
base-class features, for whichever Keras is installed. Every difference is
listed in DELIBERATE (and in the README's "Deliberate differences")."""
import inspect
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_optimizer

STOCK, OURS = keras.optimizers.RMSprop, keras_optimizer.RMSprop
# Public names ours has beyond the stock class, and why.
DELIBERATE = {
    "minimize": "the documented example calls opt.minimize(loss, [var1]); Keras 3 has no minimize",
    "state_dtype": "the compact-state argument, kept as stock keeps rho or centered",
    "stochastic_rounding": "likewise",
}


def _public(cls):
    return {n for n in dir(cls) if not n.startswith("_")}


# Constructor arguments ours has beyond the stock class (keyword-only, before
# **kwargs), and why.
DELIBERATE_ARGUMENTS = {
    "state_dtype": "compact optimizer state, which stock Keras has not; None is stock's state",
    "stochastic_rounding": "how bfloat16 state rounds; False is to nearest",
}


def test_constructor_signature_is_stocks_plus_the_listed_arguments():
    stock = inspect.signature(STOCK.__init__).parameters
    ours = dict(inspect.signature(OURS.__init__).parameters)
    extra = [ours.pop(name) for name in DELIBERATE_ARGUMENTS]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in extra)
    assert [p.default for p in extra] == [None, False]
    assert [(p.name, p.default, p.kind) for p in ours.values()] == \
        [(p.name, p.default, p.kind) for p in stock.values()]


def test_public_surface_is_stocks_plus_the_listed_extras():
    # Instances: what a user reaches, attributes set in __init__ included
    # (ours reads loss_scale_factor through a property, stock sets it there).
    assert _public(STOCK()) - _public(OURS()) == set()
    assert _public(OURS()) - _public(STOCK()) == set(DELIBERATE)


def test_config_keys_and_values_are_stocks():
    kwargs = dict(learning_rate=0.01, rho=0.8, momentum=0.5, epsilon=1e-6, centered=True,
                  clipnorm=1.0, weight_decay=0.01, use_ema=True)
    ours, stock = OURS(**kwargs).get_config(), STOCK(**kwargs).get_config()
    assert set(ours) == set(stock)  # the compact-state keys only when set
    for key in stock:
        if key != "name":
            assert ours[key] == stock[key], key


def _build_both(**kwargs):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    ours, stock = OURS(**kwargs), STOCK(**kwargs)
    ours.build(model.trainable_variables)
    stock.build(model.trainable_variables)
    return model, ours, stock


def test_variables_and_slot_names_are_stocks():
    _, ours, stock = _build_both(momentum=0.9, centered=True)
    strip = lambda v: v.path.split("/", 1)[-1]  # noqa: E731  (the prefix is the optimizer's name)
    assert [strip(v) for v in ours.variables] == [strip(v) for v in stock.variables]
    assert [v.shape for v in ours.variables] == [v.shape for v in stock.variables]


def test_default_names_follow_stock():
    stock_default = inspect.signature(STOCK.__init__).parameters["name"].default
    names = [OURS().name for _ in range(3)]
    if stock_default is None:  # unique in the program, as stock's are
        assert len(set(names)) == 3
        assert all(n.startswith("rm_sprop") for n in names)
    else:
        assert names == [stock_default] * 3
    assert OURS(name="generator").name == "generator"


def test_name_survives_serialization():
    opt = OURS(name="discriminator_opt", momentum=0.5)
    again = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(again) is OURS and again.name == "discriminator_opt"
    assert OURS.from_config(opt.get_config()).name == "discriminator_opt"


def test_iterations_learning_rate_and_set_weights_behave_as_stock():
    model, ours, stock = _build_both(momentum=0.9)
    for opt in (ours, stock):
        opt.learning_rate = 0.5
        opt.apply_gradients([(tf.ones_like(v), v) for v in model.trainable_variables])
    assert int(ours.iterations.numpy()) == int(stock.iterations.numpy()) == 1
    assert float(ours.learning_rate.numpy()) == float(stock.learning_rate.numpy()) == 0.5
    # Stock's state loads into ours through set_weights, and back.
    ours.set_weights([v.numpy() for v in stock.variables])
    for a, b in zip(ours.variables, stock.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    stock.set_weights([np.zeros_like(v.numpy()) for v in ours.variables])
    assert int(stock.iterations.numpy()) == 0


def test_exclude_from_weight_decay_scale_loss_and_finalize_behave_as_stock():
    for opt in (OURS(weight_decay=0.1, loss_scale_factor=4.0, use_ema=True),
                STOCK(weight_decay=0.1, loss_scale_factor=4.0, use_ema=True)):
        var = keras.Variable(np.ones(2, np.float32), name="excluded_bias")
        opt.exclude_from_weight_decay(var_names=["excluded"])
        assert float(opt.scale_loss(tf.constant(2.0)).numpy()) == 8.0
        opt.build([var])
        opt.finalize_variable_values([var])  # EMA copies into the variable


@pytest.mark.parametrize("argument, value", [
    ("rho", 1.5), ("rho", -0.1), ("rho", math.nan), ("momentum", -0.5), ("momentum", 1.5),
    ("epsilon", -1.0), ("rho", "x"), ("momentum", "0.9"), ("epsilon", "small"),
])
def test_values_that_can_only_give_nonsense_are_refused_naming_the_argument(argument, value):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        OURS(**{argument: value})


def test_valid_edge_values_stay_accepted():
    OURS(learning_rate=-0.01)  # gradient ascent, as stock allows
    OURS(rho=0.0), OURS(rho=1.0), OURS(momentum=1.0), OURS(epsilon=0.0)
    OURS(rho=np.float32(0.5)), OURS(momentum=tf.Variable(0.5))
