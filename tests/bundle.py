"""One update's variable and slots, and the calls of the ops on them.

A Bundle holds var, ms, mg and mom: NumPy arrays (initial or expected
values) or tf.Variables, with None for a slot the variant lacks (mg without
centering, mom without momentum). It iterates as (var, ms, mg, mom), so it
unpacks and zips like a tuple, and is indexed by slot name or position.
"""
import tensorflow as tf

import rmsprop_op

SLOTS = ("var", "ms", "mg", "mom")


class Bundle:
    def __init__(self, var, ms, mg=None, mom=None):
        self._values = [var, ms, mg, mom]

    var = property(lambda self: self._values[0])
    ms = property(lambda self: self._values[1])
    mg = property(lambda self: self._values[2])
    mom = property(lambda self: self._values[3])

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(SLOTS)

    def _index(self, key):
        return SLOTS.index(key) if isinstance(key, str) else key

    def __getitem__(self, key):
        return self._values[self._index(key)]

    def __setitem__(self, key, value):
        self._values[self._index(key)] = value

    def names(self):
        """The names of the slots present (var first), in SLOTS order."""
        return [name for name, v in zip(SLOTS, self._values) if v is not None]

    def present(self):
        """The values of the slots present, in SLOTS order."""
        return [v for v in self._values if v is not None]

    def map(self, fn):
        return Bundle(*(None if v is None else fn(v) for v in self._values))

    def variables(self, device=None):
        """tf.Variables of these values, on `device` if given."""
        with tf.device(device):
            return self.map(tf.Variable)

    def numpy(self):
        return self.map(lambda v: v.numpy())

    def __repr__(self):
        return f"Bundle({', '.join(f'{n}={v!r}' for n, v in zip(SLOTS, self._values))})"


def hyper_for(bundle, hyper):
    """`hyper` with momentum 0 where the bundle has no momentum slot (the ops
    refuse a momentum without one)."""
    return hyper if bundle.mom is not None else dict(hyper, momentum=0.0)


def apply_update(bundle, grad, hyper, indices=None, **attrs):
    """rmsprop_op.update on the bundle's variables: dense where indices is
    None. `hyper` (lr, rho, momentum, epsilon, and epsilon_after_sqrt where
    given) and `attrs` (use_locking, ...) are passed as they are."""
    return rmsprop_op.update(bundle.var, bundle.ms, grad, mg=bundle.mg, mom=bundle.mom,
                             indices=indices, **hyper, **attrs)


def apply_group(bundles, grads, hyper, **attrs):
    """rmsprop_op.group_apply_rmsprop on the bundles; centered and momentum
    as the first bundle has mg and mom."""
    centered, with_mom = bundles[0].mg is not None, bundles[0].mom is not None
    return rmsprop_op.group_apply_rmsprop(
        [b.var for b in bundles], [b.mg for b in bundles] if centered else None,
        [b.ms for b in bundles], [b.mom for b in bundles] if with_mom else None,
        grads, **hyper, **attrs)
