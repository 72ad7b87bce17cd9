"""The demo: `python -m keras_optimizer` (what `make demo` runs).

1. The documented example of tf.keras.optimizers.RMSprop, with our optimizer.
2. A dense classifier of scikit-learn's handwritten digits (shipped with the
   package, no download) trained with keras.optimizers.RMSprop and with ours.
3. The same digits as (pixel, intensity) tokens through an Embedding layer,
   which gives sparse gradients: ours updates only the rows in each batch.
Then a side-by-side table of loss, accuracy and time per step.
"""
import argparse
import time

import keras
import numpy as np
import tensorflow as tf

from keras_optimizer import RMSprop

PARTS = ("example", "dense", "embedding")


def documented_example():
    opt = RMSprop(learning_rate=0.1)
    var1 = tf.Variable(10.0)
    loss = lambda: (var1 ** 2) / 2.0  # d(loss) / d(var1) = var1  # noqa: E731
    step_count = opt.minimize(loss, [var1]).numpy()
    print(f"documented example: step_count = {step_count}, var1 = {var1.numpy():.6f} "
          "(expected 1 and 9.683772)")
    return step_count, float(var1.numpy())


MISSING_SKLEARN = (
    "The demo's data set (handwritten digits) comes with scikit-learn, which is not "
    "installed. Install the demo's extra with `pip install \"rmsprop-op[demo]\"` "
    "(or `pip install scikit-learn`), or run only the documented example with "
    "`python -m keras_optimizer --parts example`.")


def load_digits():
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise SystemExit(MISSING_SKLEARN) from None
    data = sklearn_digits()
    x = data.data.astype(np.float32) / 16.0
    y = data.target.astype(np.int32)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    split = int(0.8 * len(x))
    return (x[:split], y[:split]), (x[split:], y[split:]), data.data.astype(np.int32)[order]


def dense_model():
    return keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10),
    ])


def embedding_model():
    # Token = pixel position * 17 + intensity (0..16): 1088 embedding rows,
    # of which a batch touches only a few hundred.
    return keras.Sequential([
        keras.Input((64,), dtype="int32"),
        keras.layers.Embedding(64 * 17, 16),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10),
    ])


class StepTimer(keras.callbacks.Callback):
    """Median wall time of a training step, first step (tracing) excluded."""

    def on_train_begin(self, logs=None):
        self.times = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._start)

    @property
    def median_ms(self):
        return 1000 * float(np.median(self.times[1:]))

    @property
    def steps_timed(self):
        return len(self.times[1:])


def train(build_model, optimizer, train_data, test_data, epochs, batch_size, verbose):
    keras.utils.set_random_seed(0)
    model = build_model()
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    timer = StepTimer()
    model.fit(*train_data, batch_size=batch_size, epochs=epochs, shuffle=False,
              callbacks=[timer], verbose=verbose)
    loss, accuracy = model.evaluate(*test_data, verbose=0)
    return dict(loss=loss, accuracy=accuracy, step_ms=timer.median_ms, steps=timer.steps_timed)


def compare(title, build_model, train_data, test_data, args):
    results = {}
    for name, make in (("keras.optimizers.RMSprop", keras.optimizers.RMSprop),
                       ("keras_optimizer.RMSprop", RMSprop)):
        print(f"\n{title}: {name}")
        results[name] = train(build_model, make(learning_rate=args.learning_rate, momentum=0.9),
                              train_data, test_data, args.epochs, args.batch_size,
                              verbose="auto" if args.progress else 0)
    return results


def print_table(rows):
    print(f"\n{'model':<10} {'optimizer':<26} {'test loss':>10} {'accuracy':>9} {'ms/step':>8} "
          f"{'steps timed':>11}")
    for title, results in rows:
        for name, r in results.items():
            print(f"{title:<10} {name:<26} {r['loss']:>10.4f} {r['accuracy']:>9.4f} "
                  f"{r['step_ms']:>8.2f} {r['steps']:>11}")
    print("\nms/step: the median wall time of a whole training step (the first, which\n"
          "traces, left out), on this machine as it is now: a busy or shared machine\n"
          "moves it from run to run, and at these small sizes the update is a small\n"
          "part of a step. `make bench` compares the optimizers properly.")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m keras_optimizer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=0.001)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="hide Keras's progress bars")
    args = parser.parse_args(argv)

    rows = []
    if "dense" in args.parts or "embedding" in args.parts:
        train_data, test_data, pixels = load_digits()  # first: it may be missing
        split = len(train_data[0])
    if "example" in args.parts:
        documented_example()
    if "dense" in args.parts:
        rows.append(("dense", compare("dense digits classifier", dense_model,
                                      train_data, test_data, args)))
    if "embedding" in args.parts:
        tokens = (np.arange(64) * 17 + pixels).astype(np.int32)
        rows.append(("embedding", compare(
            "embedding digits classifier (sparse gradients)", embedding_model,
            (tokens[:split], train_data[1]), (tokens[split:], test_data[1]), args)))
    if rows:
        print_table(rows)
        print("\nDense: both optimizers compute the same update (equal to float32 round-off).\n"
              "Embedding: ours updates only the rows in each batch; the stock optimizer\n"
              "densifies the gradient and also decays and moves every other row, so the\n"
              "two runs differ slightly by design.")


if __name__ == "__main__":
    main()
