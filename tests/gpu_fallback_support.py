"""What the GPU-fallback tests of both optimizers share: pretending that
every variable is on a GPU whose kernels are missing, and the op types a
traced function runs."""
import tensorflow as tf

import rmsprop_op
from keras_optimizer import _implementation

FUSED_OP_PREFIX = "FusedResource"


def pretend_gpu_without_kernels(monkeypatch):
    """Every variable reads as on a GPU; the GPU kernels as not loaded."""
    monkeypatch.setattr(_implementation, "on_gpu", lambda variable: True)
    monkeypatch.setattr(rmsprop_op, "GPU_KERNELS_LOADED", False)
    monkeypatch.setattr(_implementation, "_warned", False)


def op_types(concrete_function):
    """The op types of a traced function, its nested functions included."""
    graph_def = concrete_function.graph.as_graph_def()
    types = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        types.update(node.op for node in function.node_def)
    return types


def fused_ops_in(concrete_function):
    return {t for t in op_types(concrete_function) if t.startswith(FUSED_OP_PREFIX)}


def fallback_warnings(records):
    return [r for r in records if "GPU kernels are not loaded" in str(r.message)]


__all__ = ["pretend_gpu_without_kernels", "fused_ops_in", "fallback_warnings", "tf"]
