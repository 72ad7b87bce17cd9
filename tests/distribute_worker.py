"""Training runs under tf.distribute for tests/test_distribute.py.

Every run needs a TensorFlow runtime of its own (logical devices are fixed
when TensorFlow first touches the CPU; a cluster lives as long as its
process), so the tests start this script in subprocesses:

    python tests/distribute_worker.py MODE OUT_DIR

MODE is one of
  mirrored  MirroredStrategy over 2 logical CPUs, against the stock optimizer
            and against one device, with full-precision and int8 state;
  worker    one MultiWorkerMirroredStrategy worker (TF_CONFIG from the
            environment); every worker writes a checkpoint, the chief's
            to OUT_DIR/ckpt_<kind>;
  single    the multi-worker job in one plain process, then the chief's
            checkpoints restored there;
  ps        ParameterServerStrategy on an in-process cluster (2 workers,
            2 parameter servers on loopback), against one process.
Results go to OUT_DIR as NAME.npz (arrays arr_0, arr_1, ...: the model's
weights, then the optimizer's variables) and NAME.json (facts).
"""
import json
import os
import socket
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

GLOBAL_BATCH = 32
STEPS = 12
# Token ids: rows >= SEEN never occur; rows in [LATE, SEEN) only in the first
# half of the steps, so that a densified update (which keeps moving them
# through momentum) would show in the later ones.
VOCAB, SEEN, LATE = 50, 40, 30
KWARGS = dict(learning_rate=0.01, momentum=0.9)
KINDS = ("dense", "embedding")


def _split_cpu(n):
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])


def _data(kind):
    rng = np.random.default_rng(0)
    n = GLOBAL_BATCH * STEPS
    y = rng.standard_normal((n, 1)).astype("float32")
    if kind == "dense":
        return rng.standard_normal((n, 8)).astype("float32"), y
    half = n // 2
    x = np.concatenate([rng.integers(0, SEEN, (half, 6)), rng.integers(0, LATE, (n - half, 6))])
    return x.astype("int32"), y


def _model(kind):
    import keras
    keras.utils.set_random_seed(0)
    if kind == "dense":
        return keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="tanh"),
                                 keras.layers.Dense(1)])
    return keras.Sequential([keras.Input((6,), dtype="int32"), keras.layers.Embedding(VOCAB, 4),
                             keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(1)])


def _record_sparse_gradients():
    """Static shapes of the values of every IndexedSlices reaching our update_step."""
    import keras_optimizer

    shapes = []
    update_step = keras_optimizer.RMSprop.update_step

    def recording(self, gradient, variable, learning_rate):
        if isinstance(gradient, tf.IndexedSlices):
            shapes.append(gradient.values.shape.as_list())
        return update_step(self, gradient, variable, learning_rate)

    keras_optimizer.RMSprop.update_step = recording
    return shapes


def _fit(kind, optimizer_cls, strategy):
    """(model, optimizer) after one epoch of `fit`: STEPS global batches."""
    with strategy.scope():
        model = _model(kind)
        optimizer = optimizer_cls(**KWARGS)
        model.compile(optimizer=optimizer, loss="mse")
    x, y = _data(kind)
    model.fit(x, y, batch_size=GLOBAL_BATCH, epochs=1, shuffle=False, verbose=0)
    return model, optimizer


def _replica_step(model, optimizer):
    def step(x, y):
        with tf.GradientTape() as tape:
            squared = tf.reduce_mean(tf.square(model(x, training=True) - y), axis=-1)
            # The mean over the global batch: the optimizer sums the
            # replicas' gradients.
            loss = tf.nn.compute_average_loss(squared, global_batch_size=GLOBAL_BATCH)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return step


def _build(kind, strategy):
    import keras_optimizer

    with strategy.scope():
        model = _model(kind)
        optimizer = keras_optimizer.RMSprop(**KWARGS)
        optimizer.build(model.trainable_variables)
    return model, optimizer


def _train_loop(kind, strategy=None):
    """(model, optimizer) after STEPS global batches of a custom training loop.

    Not `fit`: in Keras 3 `fit` fails under MultiWorkerMirroredStrategy before
    any optimizer code runs (its first step hands the (x, y) batch to
    `strategy.reduce`, which rejects a tuple there; keras-team/keras#20585).
    """
    strategy = strategy or tf.distribute.get_strategy()
    model, optimizer = _build(kind, strategy)
    x, y = _data(kind)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    replica_step = _replica_step(model, optimizer)

    @tf.function
    def step(iterator):
        strategy.run(replica_step, args=next(iterator))

    for _ in range(STEPS):
        step(iterator)
    return model, optimizer


def _state(model, optimizer):
    return model.get_weights() + [np.asarray(v.numpy()) for v in optimizer.variables]


def _save(out, name, arrays=None, facts=None):
    if arrays is not None:
        np.savez(os.path.join(out, name + ".npz"), *arrays)
    if facts is not None:
        with open(os.path.join(out, name + ".json"), "w") as f:
            json.dump(facts, f)


def _devices(variable):
    value = variable.value
    return [c.device for c in getattr(value, "values", [value])]


def _placement(model, optimizer):
    """How the strategy holds the optimizer's variables."""
    from tensorflow.python.distribute import values as values_lib

    agree = True
    for v in optimizer.variables + model.trainable_variables:
        if isinstance(v.value, values_lib.DistributedVariable):
            first, *rest = [c.numpy() for c in v.value.values]
            agree &= all(np.array_equal(first, c) for c in rest)
    return {
        "types": [type(v.value).__name__ for v in optimizer.variables],
        "iterations": int(optimizer.iterations.numpy()),
        "replicas_agree": bool(agree),
        "variable_devices": [_devices(v) for v in model.trainable_variables],
        # Per variable, the devices of each of its slots.
        "slot_devices": [[_devices(optimizer._velocities[i]), _devices(optimizer._momentums[i])]
                         for i in range(len(model.trainable_variables))],
    }


def _compact_fit(strategy):
    """(model, optimizer) after one epoch of `fit` with int8 optimizer state
    (a 64 x 64 kernel: large enough to have it)."""
    import keras
    import keras_optimizer

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((GLOBAL_BATCH * STEPS, 64)).astype("float32")
    y = rng.standard_normal((GLOBAL_BATCH * STEPS, 1)).astype("float32")
    with strategy.scope():
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="tanh"),
                                  keras.layers.Dense(1)])
        optimizer = keras_optimizer.RMSprop(**KWARGS, state_dtype="int8")
        model.compile(optimizer=optimizer, loss="mse")
    model.fit(x, y, batch_size=GLOBAL_BATCH, epochs=1, shuffle=False, verbose=0)
    return model, optimizer


def mirrored(out):
    _split_cpu(2)
    import keras
    import keras_optimizer

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    facts = {"replicas": strategy.num_replicas_in_sync}
    sparse_shapes = _record_sparse_gradients()
    for kind in KINDS:
        model, optimizer = _fit(kind, keras_optimizer.RMSprop, strategy)
        facts[kind] = _placement(model, optimizer)
        _save(out, f"mirrored_{kind}_ours", _state(model, optimizer))
        _save(out, f"mirrored_{kind}_initial", _model(kind).get_weights())
    facts["sparse_gradient_shapes"] = list(sparse_shapes)
    model, optimizer = _compact_fit(strategy)
    facts["compact"] = dict(_placement(model, optimizer),
                            dtypes=[str(v.dtype) for v in optimizer.variables])
    _save(out, "mirrored_compact_ours", _state(model, optimizer))
    model, optimizer = _compact_fit(tf.distribute.get_strategy())
    _save(out, "mirrored_compact_one_device", _state(model, optimizer))
    model, optimizer = _fit("dense", keras.optimizers.RMSprop, strategy)
    _save(out, "mirrored_dense_stock", _state(model, optimizer))
    # Whether this Keras's fit under MirroredStrategy is what one device
    # computes, judged with its own optimizer (not so in some releases).
    model, optimizer = _fit("dense", keras.optimizers.RMSprop, tf.distribute.get_strategy())
    _save(out, "one_device_dense_stock", model.get_weights())
    model, optimizer = _fit("embedding", keras_optimizer.RMSprop, tf.distribute.get_strategy())
    _save(out, "mirrored_embedding_one_device", _state(model, optimizer))

    # Applied eagerly outside the strategy's scope, the optimizer still
    # updates every replica.
    for name, cls in (("ours", keras_optimizer.RMSprop), ("stock", keras.optimizers.RMSprop)):
        with strategy.scope():
            variables = [keras.Variable(np.full(s, 1.0, "float32")) for s in ((3,), (2, 2))]
            optimizer = cls(**KWARGS)
            optimizer.build(variables)
        optimizer.apply_gradients(zip([tf.ones((3,)), tf.ones((2, 2))], variables))
        _save(out, f"outside_scope_{name}",
              [c.numpy() for v in variables for c in v.value.values])
    # An optimizer that is not the strategy's refuses its variables.
    with strategy.scope():
        variables = [keras.Variable(np.ones(3, "float32")), keras.Variable(np.ones(2, "float32"))]
    try:
        keras_optimizer.RMSprop().apply_gradients(zip([tf.ones(3), tf.ones(2)], variables))
        facts["foreign_strategy_error"] = None
    except ValueError as e:
        facts["foreign_strategy_error"] = str(e)
    _save(out, "mirrored", facts=facts)


def _checkpoint(model, optimizer):
    return tf.train.Checkpoint(model=model, optimizer=optimizer)


def worker(out):
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    resolver = strategy.cluster_resolver
    name = f"{resolver.task_type}{resolver.task_id}"
    facts = {"replicas": strategy.num_replicas_in_sync}
    sparse_shapes = _record_sparse_gradients()
    for kind in KINDS:
        model, optimizer = _train_loop(kind, strategy)
        facts[kind] = _placement(model, optimizer)
        _save(out, f"worker_{kind}_{name}", _state(model, optimizer))
        # Every worker writes (saving a distributed variable may need every
        # worker); only the chief's copy is kept.
        chief = resolver.task_id == 0
        directory = os.path.join(out, f"ckpt_{kind}" if chief else f"ckpt_{kind}_{name}")
        _checkpoint(model, optimizer).write(os.path.join(directory, "ckpt"))
    facts["sparse_gradient_shapes"] = list(sparse_shapes)
    _save(out, f"worker_{name}", facts=facts)


def single(out):
    import keras_optimizer

    for kind in KINDS:
        model, optimizer = _train_loop(kind)
        _save(out, f"single_{kind}", _state(model, optimizer))
        _save(out, f"single_{kind}_initial", _model(kind).get_weights())
        model = _model(kind)
        restored = keras_optimizer.RMSprop(**KWARGS)
        restored.build(model.trainable_variables)
        _checkpoint(model, restored).read(
            os.path.join(out, f"ckpt_{kind}", "ckpt")).assert_consumed()
        _save(out, f"restored_{kind}", _state(model, restored))


def free_ports(n):
    """n distinct ports free on every interface (gRPC servers bind 0.0.0.0).
    All are held until all are chosen, so none is chosen twice; another
    process may still take one before its server starts."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _in_process_cluster(workers=2, ps=2):
    """A resolver for a cluster whose worker and ps servers run in this process."""
    addresses = [f"127.0.0.1:{p}" for p in free_ports(workers + ps + 1)]
    spec = {"worker": addresses[:workers], "ps": addresses[workers:-1],
            "chief": addresses[-1:]}
    cluster = tf.train.ClusterSpec(spec)
    # All servers share this process: with the default inter-op pool (one
    # thread per core) the workers' and the servers' ops can starve each
    # other on a small machine.
    config = tf.compat.v1.ConfigProto(inter_op_parallelism_threads=workers + ps)
    servers = [tf.distribute.Server(cluster, job_name=job, task_index=i, protocol="grpc",
                                    config=config, start=True)
               for job in ("worker", "ps") for i in range(len(spec[job]))]
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(cluster, rpc_layer="grpc")
    return resolver, servers


def ps(out):
    resolver, servers = _in_process_cluster()
    strategy = tf.distribute.experimental.ParameterServerStrategy(resolver)
    coordinator = tf.distribute.experimental.coordinator.ClusterCoordinator(strategy)
    facts = {}
    sparse_shapes = _record_sparse_gradients()
    for kind in KINDS:
        model, optimizer = _build(kind, strategy)
        replica_step = _replica_step(model, optimizer)

        @tf.function
        def step(x, y):
            strategy.run(replica_step, args=(x, y))

        x, y = _data(kind)
        batches = [(tf.constant(x[s:s + GLOBAL_BATCH]), tf.constant(y[s:s + GLOBAL_BATCH]))
                   for s in range(0, len(x), GLOBAL_BATCH)]
        # One step at a time: each runs on whichever worker is free, and the
        # result is that of one process taking the same batches in order.
        for batch in batches:
            coordinator.schedule(step, args=batch)
            coordinator.join()
        facts[kind] = _placement(model, optimizer)
        _save(out, f"ps_{kind}", _state(model, optimizer))
        # Asynchronous steps, both workers at once: no fixed result to compare.
        for batch in batches:
            coordinator.schedule(step, args=batch)
        coordinator.join()
        facts[kind]["async_iterations"] = int(optimizer.iterations.numpy())
        _save(out, f"ps_{kind}_async", _state(model, optimizer))
        _save(out, f"ps_{kind}_initial", _model(kind).get_weights())
    facts["sparse_gradient_shapes"] = list(sparse_shapes)
    for kind in KINDS:
        _save(out, f"ps_{kind}_one_process", _state(*_train_loop(kind)))
    _save(out, "ps", facts=facts)
    del servers


if __name__ == "__main__":
    mode, out_dir = sys.argv[1], sys.argv[2]
    {"mirrored": mirrored, "worker": worker, "single": single, "ps": ps}[mode](out_dir)
