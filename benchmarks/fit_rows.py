"""The `fit` rows of `make bench`: whole training steps of realistic models,
stock Keras's RMSprop against ours in one process."""
import statistics
import time

import keras
import numpy as np

import keras_optimizer
from benchmarks.timing import best_in_turn


class _StepTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_train_batch_begin(self, batch, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self.start)


def _fit_models(quick):
    """name -> (build the model, (x, y), batch size, loss, optimizer arguments)."""
    rng = np.random.default_rng(3)
    steps = 15 if quick else 60
    vocabulary = 20_000 if quick else 200_000

    def data(x_shape, y_shape, batch, integers=None):
        n = steps * batch
        x = (rng.integers(0, integers, size=(n,) + x_shape).astype(np.int32) if integers
             else rng.standard_normal((n,) + x_shape).astype(np.float32))
        return x, rng.standard_normal((n,) + y_shape).astype(np.float32)

    def deep_mlp():
        layers = [keras.Input((64,))]
        layers += [keras.layers.Dense(64, activation="relu") for _ in range(100)]
        return keras.Sequential(layers + [keras.layers.Dense(1)])

    def cnn():
        return keras.Sequential([
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.Conv2D(64, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(10)])

    def gru():
        return keras.Sequential([keras.Input((20, 32)), keras.layers.GRU(64), keras.layers.Dense(1)])

    def embedding():
        return keras.Sequential([
            keras.Input((20,), dtype="int32"),
            keras.layers.Embedding(vocabulary, 64),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(1)])

    def wide_mlp():
        return keras.Sequential([keras.Input((256,))] +
                                [keras.layers.Dense(256, activation="relu") for _ in range(10)] +
                                [keras.layers.Dense(1)])

    momentum = dict(learning_rate=1e-3, momentum=0.9)
    return {
        "deep MLP, 100 Dense(64), batch 16": (deep_mlp, data((64,), (1,), 16), 16, "mse", momentum),
        "CNN, 2 Conv2D + Dense, batch 64": (cnn, data((28, 28, 1), (10,), 64), 64, "mse", momentum),
        "GRU(64) + Dense, batch 64": (gru, data((20, 32), (1,), 64), 64, "mse", momentum),
        f"Embedding({vocabulary // 1000}K,64) + Dense, batch 256":
            (embedding, data((20,), (1,), 256, integers=vocabulary), 256, "mse", momentum),
        "MLP 10 Dense(256), centered + momentum, batch 64":
            (wide_mlp, data((256,), (1,), 64), 64, "mse",
             dict(learning_rate=1e-4, momentum=0.9, centered=True)),
    }


def timed_fit(model_entry, cls, jit_compile="auto"):
    """(seconds per step, final loss) of one model.fit of a `_fit_models`
    entry with optimizer class `cls`, from the same seed: timed per step by a
    callback (fit calls its train function once a step), median after the
    first 5 steps. `jit_compile` goes to model.compile ("auto", its default,
    is no XLA on a CPU-only machine)."""
    build, (x, y), batch, loss, kwargs = model_entry
    keras.utils.set_random_seed(0)
    model = build()
    model.compile(optimizer=cls(**kwargs), loss=loss, jit_compile=jit_compile)
    if jit_compile is True and not model.jit_compile:
        raise RuntimeError("Keras turned jit_compile=True off for this model")
    timer = _StepTimer()
    history = model.fit(x, y, batch_size=batch, epochs=1, verbose=0, callbacks=[timer],
                        shuffle=False)
    return statistics.median(timer.times[5:]), history.history["loss"][-1]


def fit_rows(bench, quick):
    """Whole training steps: model.fit of the same model with stock Keras's
    RMSprop and ours, in this process (`timed_fit`), the two fits in turn and
    the faster of two rounds each. The final losses must agree: both train
    the same model the same way."""
    for case, entry in _fit_models(quick).items():
        final_loss = {}

        def fit(name, cls):
            seconds, final_loss[name] = timed_fit(entry, cls)
            return seconds

        # The two fits in turn, best of two rounds.
        best = best_in_turn({"keras stock": lambda: fit("keras stock", keras.optimizers.RMSprop),
                             "ours (keras)": lambda: fit("ours (keras)", keras_optimizer.RMSprop)},
                            rounds=2)
        (t_stock, loss_stock), (t_ours, loss_ours) = [
            (best[name], final_loss[name]) for name in ("keras stock", "ours (keras)")]
        agree = abs(loss_ours - loss_stock) <= 1e-3 * max(abs(loss_stock), 1e-12)
        bench.add("fit", case, "keras stock", t_stock, per_call=1, final_loss=loss_stock)
        bench.add("fit", case, "ours (keras)", t_ours, per_call=1, final_loss=loss_ours,
                  losses_agree=agree, ours_speedup=t_stock / t_ours)
