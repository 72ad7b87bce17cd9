"""A training process for tests/test_resume.py to kill and restart.

Trains a small Keras model (an Embedding, so sparse updates too, and Dense
layers) with keras_optimizer.RMSprop on batches that depend only on the step
number, and every few steps writes a tf.train.Checkpoint (through a
CheckpointManager) and a .keras file. With --resume it first restores the
latest one of the chosen kind. At the end it writes every model weight and
optimizer variable to --out.

    python tests/resume_worker.py --dir DIR --steps N --every E --out OUT.npz
        [--resume checkpoint|keras] [--pause SECONDS]
"""
import argparse
import glob
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_optimizer  # noqa: E402

VOCAB, LENGTH, BATCH = 40, 6, 16


def build_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((LENGTH,), dtype="int32"),
        keras.layers.Embedding(VOCAB, 8),
        keras.layers.Flatten(),
        keras.layers.Dense(16, activation="tanh"),
        keras.layers.Dense(1),
    ])
    # A schedule, so that a lost step count would show in the learning rate.
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=10, decay_rate=0.8)
    model.compile(optimizer=keras_optimizer.RMSprop(schedule, momentum=0.9, centered=True),
                  loss="mse")
    return model


def batch(step):
    rng = np.random.default_rng(1000 + step)
    return (rng.integers(0, VOCAB, (BATCH, LENGTH)).astype(np.int32),
            rng.standard_normal((BATCH, 1)).astype(np.float32))


def keras_files(directory):
    return sorted(glob.glob(os.path.join(directory, "model-*.keras")))


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--every", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--resume", choices=["checkpoint", "keras"])
    parser.add_argument("--pause", type=float, default=0.0)
    args = parser.parse_args(argv)
    # One thread each: the runs compared must split their work identically.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    if args.resume == "keras":
        model = keras.models.load_model(keras_files(args.dir)[-1])
    else:
        model = build_model()
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    manager = tf.train.CheckpointManager(checkpoint, os.path.join(args.dir, "ckpt"),
                                         max_to_keep=None)
    if args.resume == "checkpoint":
        model.optimizer.build(model.trainable_variables)
        checkpoint.restore(manager.latest_checkpoint).assert_consumed()
    start = int(model.optimizer.iterations.numpy())
    print(json.dumps({"start": start}), flush=True)

    for step in range(start, args.steps):
        model.train_on_batch(*batch(step))
        done = step + 1
        if done % args.every == 0:
            manager.save(checkpoint_number=done)
            # .keras files are zip archives written in place: written under
            # another name and renamed, so that one killed mid-write is never
            # taken for the latest.
            partial = os.path.join(args.dir, f"partial-{done}.keras")
            model.save(partial)
            os.replace(partial, os.path.join(args.dir, f"model-{done:06d}.keras"))
        time.sleep(args.pause)

    arrays = {f"weight{i}": w.numpy() for i, w in enumerate(model.weights)}
    arrays.update({f"optimizer{i}": v.numpy() for i, v in enumerate(model.optimizer.variables)})
    np.savez(args.out, **arrays)
    print(json.dumps({"done": args.steps}), flush=True)


if __name__ == "__main__":
    main()
