import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if os.environ.get("RMSPROP_TEST_CPU_DEVICES"):
    # Several CPU devices, for tests of variables placed on different ones
    # (tests/test_differential.py runs itself so); set before TensorFlow
    # initializes its devices.
    import tensorflow as tf

    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration()] * int(os.environ["RMSPROP_TEST_CPU_DEVICES"]))

from hypothesis import HealthCheck, settings  # noqa: E402

# `make test` runs the quick profile; `make fuzz` (HYPOTHESIS_PROFILE=long)
# the long one. tests/test_fuzz.py gives each parametrized case a share of
# max_examples. No deadline: the first call of an op or a tf.function traces
# and takes far longer than the rest.
_FUZZ = dict(deadline=None, print_blob=True,
             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("quick", max_examples=100, **_FUZZ)
settings.register_profile("long", max_examples=2000, **_FUZZ)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))
