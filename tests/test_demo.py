"""The demo runs and its numbers are the documented ones."""
import keras_optimizer.__main__ as demo


def test_documented_example():
    step_count, var1 = demo.documented_example()
    assert step_count == 1
    assert abs(var1 - 9.683772) < 5e-7


def test_demo_trains_both_models(capsys):
    demo.main(["--epochs", "1", "--no-progress", "--parts", "dense", "embedding"])
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()
            if line.startswith(("dense ", "embedding ")) and len(line.split()) == 5]
    assert len(rows) == 4
    dense = {r[1]: (float(r[2]), float(r[3])) for r in rows if r[0] == "dense"}
    stock, ours = dense["keras.optimizers.RMSprop"], dense["keras_optimizer.RMSprop"]
    assert abs(stock[0] - ours[0]) < 1e-3 and abs(stock[1] - ours[1]) < 1e-2
    assert ours[1] > 0.8  # a real classifier, not a smoke test
