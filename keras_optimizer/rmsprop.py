"""keras_optimizer.RMSprop: Keras 3's RMSprop on the fused ops."""
from keras_optimizer import _compat

_compat.check_keras()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import rmsprop_op  # noqa: E402
from rmsprop_op import compact_state, plain_tf  # noqa: E402
from rmsprop_op._hyperparameters import check as check_hyperparameter  # noqa: E402
from keras_optimizer import _extras, _plan  # noqa: E402
from keras_optimizer._implementation import fused_kernels_for, ops_for  # noqa: E402


def _replica_variable(variable):
    """The tf.Variable that an op updates.

    Under a strategy, `extended.update` hands the update one replica's
    component. A whole distributed variable here would give the op only its
    primary component's handle and the replicas would silently drift apart;
    that happens when the optimizer does not belong to the variable's strategy.
    """
    variable = _compat.tf_variable(variable)
    if isinstance(variable, tf.distribute.DistributedValues):
        raise ValueError(
            f"Variable {variable.name} is a {type(variable).__name__} of a "
            "tf.distribute strategy, but this optimizer was not created under "
            "that strategy's scope. Create the model and the optimizer under "
            "the same `strategy.scope()`.")
    return variable


def _as_keras_casts(learning_rate):
    """The learning rate as Keras's `ops.cast(learning_rate, dtype)` sees it:
    a Python float (from a callable) becomes a float32 tensor first, so for
    float64 variables the rate is the float32 one, as with the stock
    optimizer."""
    if isinstance(learning_rate, (int, float)):
        return tf.convert_to_tensor(learning_rate)
    return learning_rate


@keras.saving.register_keras_serializable(package="keras_optimizer", name="RMSprop")
class RMSprop(_compat.KerasHooks, keras.optimizers.Optimizer):
    """Optimizer that implements the RMSprop algorithm with fused update ops.

    A drop-in replacement for `keras.optimizers.RMSprop`: same arguments, same
    slots (`velocity`, `momentum` when momentum > 0, `average_gradient` when
    centered) and the same dense results, computed by one fused op per
    variable (or one op for many variables of one dtype). Loss-scale
    unscaling, clipping, weight decay and the weights' moving average run
    in the same op as the update for dense gradients. Sparse gradients
    (`tf.IndexedSlices`, e.g. from `Embedding`) update only the rows in the
    batch, duplicates summed first; the stock optimizer densifies them.

    Args:
        learning_rate: A float, a `keras.optimizers.schedules.LearningRateSchedule`,
            or a callable that takes no arguments. Defaults to `0.001`.
        rho: Discounting factor for the old gradients. Defaults to 0.9.
        momentum: If not 0.0, the optimizer tracks the momentum value.
            Defaults to 0.0.
        epsilon: Small constant for numerical stability, added inside the
            square root. Defaults to 1e-7.
        centered: If True, gradients are normalized by the estimated variance
            of the gradient. Defaults to False.
        state_dtype: None (default) keeps the slots in the variable's dtype,
            as the stock optimizer does. `"bfloat16"` keeps them in bfloat16,
            `"int8"` block-wise quantized in 8 bits (uint8 / int8 codes plus one
            float32 scale per block of 256 elements): a half or about a quarter of
            the state memory. Applies to float32 variables of at least 4096
            elements; others keep full-precision state. The formats are
            described in `rmsprop_op.compact_state`.
        stochastic_rounding: With `state_dtype="bfloat16"`, round the state
            stochastically (reproducibly: the noise is a function of the step
            and the slot) instead of to nearest. Defaults to False.
        **kwargs: every keyword of `keras.optimizers.Optimizer` (`clipnorm`,
            `clipvalue`, `global_clipnorm`, `weight_decay`, `use_ema`,
            `ema_momentum`, `ema_overwrite_frequency`, `loss_scale_factor`,
            `gradient_accumulation_steps`, `name`).

    Example:

    >>> opt = RMSprop(learning_rate=0.1)
    >>> var1 = tf.Variable(10.0)
    >>> loss = lambda: (var1 ** 2) / 2.0  # d(loss) / d(var1) = var1
    >>> opt.minimize(loss, [var1]).numpy()
    1
    >>> var1.numpy()
    9.683772
    """

    def __init__(
        self,
        learning_rate=0.001,
        rho=0.9,
        momentum=0.0,
        epsilon=1e-7,
        centered=False,
        weight_decay=None,
        clipnorm=None,
        clipvalue=None,
        global_clipnorm=None,
        use_ema=False,
        ema_momentum=0.99,
        ema_overwrite_frequency=None,
        loss_scale_factor=None,
        gradient_accumulation_steps=None,
        name=_compat.stock_default_name(),
        *,
        state_dtype=None,
        stochastic_rounding=False,
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
            use_ema=use_ema,
            ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency,
            loss_scale_factor=loss_scale_factor,
            gradient_accumulation_steps=gradient_accumulation_steps,
            name=name,
            **kwargs,
        )
        check_hyperparameter("rho", rho, 0.0, 1.0)
        check_hyperparameter("momentum", momentum, 0.0, 1.0)
        check_hyperparameter("epsilon", epsilon, 0.0)
        self.rho = rho
        self.momentum = momentum
        self.epsilon = epsilon
        self.centered = centered
        self.state_dtype = compact_state.check_format(state_dtype, stochastic_rounding)
        self.stochastic_rounding = bool(stochastic_rounding)

    def build(self, var_list):
        # Slots named, ordered and shaped as keras.optimizers.RMSprop's, so
        # weights and checkpoints move between the two.
        if self.built:
            return
        super().build(var_list)
        self._velocities = self._add_slots(var_list, "velocity")
        self._momentums = []
        if self.momentum > 0:
            self._momentums = self._add_slots(var_list, "momentum")
        self._average_gradients = []
        if self.centered:
            self._average_gradients = self._add_slots(var_list, "average_gradient")
        # int8 state's block scales, after every slot (None where not int8).
        self._state_scales = {}
        if self.state_dtype == "int8":
            for name, slots in (("velocity", self._velocities), ("momentum", self._momentums),
                                ("average_gradient", self._average_gradients)):
                self._state_scales[name] = [
                    _compat.add_slot_of_dtype(self, v, f"{name}_scale", "float32",
                                              compact_state.scales_shape(v.shape))
                    if self._has_compact_state(v) else None
                    for v, _ in zip(var_list, slots)]

    def _has_compact_state(self, variable):
        return compact_state.uses_compact_state(variable, self.state_dtype)

    def _add_slots(self, var_list, name):
        """One slot per variable: the stock ones, or in the compact format where
        it applies (int8: the codes; the scales come after all slots)."""
        if self.state_dtype is None or not any(self._has_compact_state(v) for v in var_list):
            return _compat.add_slots(self, var_list, name)
        code_dtype = "uint8" if name == "velocity" else "int8"
        dtype = code_dtype if self.state_dtype == "int8" else "bfloat16"
        return [_compat.add_slot_of_dtype(self, v, name, dtype) if self._has_compact_state(v)
                else _compat.add_slots(self, [v], name)[0] for v in var_list]

    def _slots(self, variable):
        """(ms, mg, mom) of a model variable as tf.Variables, or as
        rmsprop_op.compact_state objects for compact state; mg / mom None
        when absent."""
        index = _compat.variable_index(self, variable)
        ms = self._slot("velocity", self._velocities, index, variable, 0)
        mg = (self._slot("average_gradient", self._average_gradients, index, variable, 1)
              if self.centered else None)
        mom = (self._slot("momentum", self._momentums, index, variable, 2)
               if self.momentum > 0 else None)
        return ms, mg, mom

    def _slot(self, name, slots, index, variable, number):
        slot = _compat.tf_variable(slots[index])
        if not self._has_compact_state(variable):
            return slot
        if self.state_dtype == "int8":
            return compact_state.Int8State(
                slot, _compat.tf_variable(self._state_scales[name][index]))
        noise_seed = None
        if self.stochastic_rounding:
            # A different stream for each slot and step, the same on every run.
            def noise_seed():
                step = tf.cast(self.iterations, tf.int32)
                return tf.stack([tf.constant(3 * index + number, tf.int32), step])
        return compact_state.Bfloat16State(slot, noise_seed)

    def _hyperparameters(self, learning_rate):
        momentum = self.momentum if self.momentum > 0 else 0.0
        return dict(lr=learning_rate, rho=self.rho, momentum=momentum, epsilon=self.epsilon)

    def update_step(self, gradient, variable, learning_rate):
        """Update step given gradient and the associated model variable."""
        learning_rate = _as_keras_casts(learning_rate)
        variable = _replica_variable(variable)
        ms, mg, mom = self._slots(variable)
        ops = ops_for(variable, (ms, mg, mom))
        indices = None
        if isinstance(gradient, tf.IndexedSlices):
            gradient, indices = gradient.values, gradient.indices
        gradient = tf.cast(gradient, variable.dtype)
        return ops.update(variable, ms, gradient, mg=mg, mom=mom, indices=indices,
                          **self._hyperparameters(learning_rate))

    def apply(self, grads, trainable_variables=None):
        """Updates the variables with their gradients, as Keras's `apply`
        does, under one UpdatePlan that says which updates may be grouped and
        whether Keras's steps around them run in the grouped op."""
        if trainable_variables is not None:
            # Keras takes any iterable; planning must not consume it.
            trainable_variables = list(trainable_variables)
        with self._applying(_plan.plan(self, grads, trainable_variables)):
            return super().apply(grads, trainable_variables)

    def _can_group(self):
        """False for a subclass that overrides `update_step`: Keras calls it
        once per variable, and grouped or fused updates would bypass it."""
        return type(self).update_step is RMSprop.update_step

    def _apply_updates(self, distribution, grads_and_vars, learning_rate):
        """Applies one step's gradients as the plan of this `apply` says:
        each variable through its own `distribution.extended.update`, or
        dense updates of many variables of one dtype and device in one
        grouped op (one dispatch instead of hundreds), with the planned
        extras. Sparse gradients get one op each, and so do variables with
        compact state (inside group_apply_rmsprop, with the same extras)."""
        plan = self._update_plan
        # No plan: the hook was reached other than through `apply` (Keras 3
        # does not); the per-variable path is right everywhere.
        if plan is None or not plan.grouped:
            return self._per_variable_updates(distribution, grads_and_vars, learning_rate)
        variables = [_replica_variable(v) for _, v in grads_and_vars]
        if not _plan.distinct(variables):
            return self._per_variable_updates(distribution, grads_and_vars, learning_rate)
        dense_groups = {}
        for grad, var in zip((g for g, _ in grads_and_vars), variables):
            if isinstance(grad, tf.IndexedSlices):
                self.update_step(grad, var, learning_rate)
            else:
                dense_groups.setdefault((var.dtype, var.device), []).append((grad, var))
        for pairs in dense_groups.values():
            grads = [g for g, _ in pairs]
            variables = [v for _, v in pairs]
            if plan.extras is not None:
                for positions, extras in _extras.op_arguments(self, plan.extras, grads, variables):
                    self._update_group([grads[i] for i in positions],
                                       [variables[i] for i in positions], learning_rate, **extras)
            elif len(pairs) == 1:
                self.update_step(grads[0], variables[0], learning_rate)
            else:
                self._update_group(grads, variables, learning_rate)

    def _update_group(self, grads, variables, learning_rate, **extras):
        """One grouped op over variables of one dtype and device (and `extras`, see
        rmsprop_op.group_apply_rmsprop)."""
        learning_rate = _as_keras_casts(learning_rate)
        variables = [_replica_variable(v) for v in variables]
        grads = [tf.cast(g, v.dtype) for g, v in zip(grads, variables)]
        slots = [self._slots(v) for v in variables]
        emas = extras.get("emas") or [None] * len(variables)
        fused = [fused_kernels_for([v], [s + (e,)]) for v, s, e in zip(variables, slots, emas)]
        updates = []
        # The fused ops for those they can update (inside XLA, not those with
        # compact state), plain TensorFlow for the others.
        for ops, use in ((rmsprop_op, True), (plain_tf, False)):
            positions = [i for i, f in enumerate(fused) if f == use]
            if not positions:
                continue
            part = [slots[i] for i in positions]
            updates.append(ops.group_apply_rmsprop(
                [variables[i] for i in positions],
                [mg for _, mg, _ in part] if self.centered else None,
                [ms for ms, _, _ in part],
                [mom for _, _, mom in part] if self.momentum > 0 else None,
                [grads[i] for i in positions],
                **self._hyperparameters(learning_rate),
                **_extras.at_positions(extras, positions, len(variables)),
            ))
        return updates

    def minimize(self, loss, var_list, tape=None):
        """Minimizes `loss` by updating `var_list`; returns the step count.

        `loss` is a zero-argument callable, or a tensor computed under `tape`.
        `var_list` is a list of variables or a callable returning one.
        """
        if not callable(loss) and tape is None:
            raise ValueError("`tape` is required when a `Tensor` loss is passed.")
        tape = tape if tape is not None else tf.GradientTape()
        if callable(loss):
            with tape:
                if not callable(var_list):
                    var_list = list(var_list)  # an iterator is read once
                    tape.watch([_compat.tf_variable(v) for v in var_list])
                loss = loss()
        if callable(var_list):
            var_list = var_list()
        var_list = list(var_list)
        grads = tape.gradient(loss, var_list)
        return self.apply_gradients(zip(grads, var_list))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "rho": self.rho,
                "momentum": self.momentum,
                "epsilon": self.epsilon,
                "centered": self.centered,
            }
        )
        # Only when set, so that a default config is stock's, key for key.
        if self.state_dtype is not None:
            config["state_dtype"] = self.state_dtype
        if self.stochastic_rounding:
            config["stochastic_rounding"] = True
        return config
