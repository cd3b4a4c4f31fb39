"""The headline of each experiment in EXPERIMENTS.md, guarded on a small, fast
version of it, so that a regression in the engine shows up as a failed claim.

Each claim is a function that asserts; it must pass on the engine, and fail
on two broken engines: one whose optimizer does nothing, and one whose
normalization layers do nothing (identity forward and backward). A claim that
still passed on either would not be testing what it says.

Margins come from measurements of exactly these settings (seed 0), quoted in
each docstring; the full experiments (5 seeds) are in bnexp/experiments and
EXPERIMENTS.md.
"""

import pytest

from bnexp import config
from bnexp.engine import norms, optim
from bnexp.train import train


def run(raw):
    return train(config.from_dict(raw))


def final(raw, key):
    return run(raw).metrics[-1][key]


def claim_1_bn_learns_across_more_weight_scales():
    """Measured (the book's settings, seed 0): BN train acc [0.622, 0.865, 0.986,
    0.999, 0.998, 0.796] at scales 0.3 ... 0.001; none [0.946, 0.507, 0.1, 0.1,
    0.1, 0.1]."""
    book = {"norm": {"convention": "book", "eps": 1e-6},
            "train": {"dtype": "float64", "sampling": "replacement"}}
    scales = [0.3, 0.1, 0.03, 0.01, 0.003, 0.001]
    learned = {norm: sum(final({**book, "model": {"norm": norm}, "init": {"weight_scale": w}},
                               "train_acc") >= 0.8 for w in scales)
               for norm in ("batch", "none")}
    assert learned["batch"] >= 4 and learned["none"] <= 2, learned


def claim_2_bn_trains_sooner_and_keeps_sigmoid_inputs_steady():
    """Measured (4000 images, 6 epochs): test acc after epoch 1 BN 0.882 vs none
    0.100, after 6 epochs 0.900 vs 0.623; the 15-85th percentile spread of a
    last-layer unit's input grows 34x without BN, 1.5x with it."""
    base = {"data": {"n_train": 4000},
            "model": {"hidden": [100, 100, 100], "activation": "sigmoid"},
            "init": {"weight_scale": "xavier"},
            "train": {"epochs": 6, "batch_size": 60, "lr": 0.5},
            "eval": {"diagnostics_every": 10}}
    out = {}
    for norm in ("none", "batch"):
        r = run({**base, "model": {**base["model"], "norm": norm}})
        unit = [d for d in r.diagnostics if d["layer"] == 3]
        spread = [d["unit_p85"] - d["unit_p15"] for d in unit]
        out[norm] = (r.metrics[1]["test_acc"], r.metrics[-1]["test_acc"], spread[-1] / spread[0])
    assert out["batch"][0] >= 0.8 and out["none"][0] <= 0.2, out
    assert out["batch"][1] >= out["none"][1] + 0.15, out
    assert out["none"][2] >= 10 and out["batch"][2] <= 3, out


def claim_3_bn_degrades_at_batch_2_group_and_layer_norm_do_not():
    """Measured (1000 images, 5 epochs, lr 0.1 * B / 32): test acc at batch 2 vs 32:
    BN 0.303 vs 0.892, GN 0.903 vs 0.901, LN 0.896 vs 0.886."""
    def acc(norm, b):
        return final({"data": {"n_train": 1000}, "model": {"hidden": [100, 100, 100], "norm": norm},
                      "init": {"weight_scale": "he"},
                      "train": {"epochs": 5, "batch_size": b, "lr": 0.1 * b / 32}}, "test_acc")

    assert acc("batch", 32) - acc("batch", 2) >= 0.3
    for norm in ("group", "layer"):
        a2, a32 = acc(norm, 2), acc(norm, 32)
        assert abs(a32 - a2) <= 0.05 and min(a2, a32) >= 0.8, (norm, a2, a32)


def claim_4_placement_matters_little_for_relu_and_after_is_not_worse_for_sigmoid():
    """Measured (book setting, Xavier init, lr 0.05): ReLU test acc before 0.879 /
    after 0.882; sigmoid train acc before 0.963 / after 1.000, and 0.100 for the
    same net without BN (it does not learn at this rate)."""
    def acc(act, placement, key, norm="batch"):
        return final({"model": {"activation": act, "placement": placement, "norm": norm},
                      "init": {"weight_scale": "xavier"}, "train": {"lr": 0.05}}, key)

    before, after = acc("relu", "before", "test_acc"), acc("relu", "after", "test_acc")
    assert abs(before - after) < 0.03 and min(before, after) >= 0.8, (before, after)
    sig_after = acc("sigmoid", "after", "train_acc")
    assert sig_after >= acc("sigmoid", "before", "train_acc")
    assert sig_after >= acc("sigmoid", "after", "train_acc", norm="none") + 0.05


def claim_5_bn_trains_at_a_learning_rate_where_the_plain_net_diverges():
    """Measured (book net, He init, lr 1.0, 5 epochs): none diverges; BN train acc 0.957."""
    raw = {"init": {"weight_scale": "he"}, "train": {"epochs": 5, "lr": 1.0}}
    assert run({**raw, "model": {"norm": "none"}}).status == "diverged"
    bn = run({**raw, "model": {"norm": "batch"}})
    assert bn.status == "completed" and bn.metrics[-1]["train_acc"] >= 0.9


def _eval_acc(convention, eps, momentum, track):
    return final({"norm": {"convention": convention, "eps": eps, "track_running_stats": track,
                           "momentum": momentum}}, "test_acc")


def claim_6a_pytorch_running_variance_lags_at_momentum_001():
    """Book setting (weight scale 0.01, 20 epochs), PyTorch convention, momentum
    0.01: the trained net is at chance with its running statistics (measured
    0.100) and learned with batch statistics at eval (0.906). Training is the
    same in both; only evaluation differs."""
    assert _eval_acc("pytorch", 1e-5, 0.01, True) <= 0.15
    assert _eval_acc("pytorch", 1e-5, 0.01, False) >= 0.85


def claim_6b_book_running_statistics_do_not_lag_that_way():
    """The book's buffers start at 0: at momentum 0.01 eval accuracy 0.891."""
    assert _eval_acc("book", 1e-6, 0.01, True) >= 0.8


def claim_6c_running_and_batch_statistics_agree_at_momentum_01():
    """PyTorch convention, momentum 0.1: running statistics 0.904, batch statistics 0.906."""
    running, batch = _eval_acc("pytorch", 1e-5, 0.1, True), _eval_acc("pytorch", 1e-5, 0.1, False)
    assert abs(running - batch) <= 0.02 and running >= 0.85, (running, batch)


def claim_7_unsynchronized_bn_on_pairs_loses_what_synchronized_bn_keeps():
    """Measured (1000 images, 784-50-50-10, batch 50, lr 0.2, 4 epochs, seed 0):
    test acc 0.453 with ghost batches of 2, 0.883 with one group of 50."""
    base = {"data": {"n_train": 1000}, "model": {"hidden": [50, 50], "norm": "batch"},
            "init": {"weight_scale": "he"}, "train": {"epochs": 4, "batch_size": 50, "lr": 0.2}}
    pairs = final({**base, "norm": {"ghost_batch": 2}}, "test_acc")
    whole = final({**base, "norm": {"ghost_batch": 50}}, "test_acc")
    assert pairs <= 0.6 and whole >= 0.8, (pairs, whole)


def claim_8_weight_norm_keeps_working_at_batch_2_where_bn_fails():
    """Measured (1000 images, 784-50-50-10, batch 2, lr 0.00625, 3 epochs, seed 0):
    test acc 0.850 with weight norm, 0.342 with batch norm."""
    base = {"data": {"n_train": 1000}, "init": {"weight_scale": "he"},
            "train": {"epochs": 3, "batch_size": 2, "lr": 0.00625}}
    weight, batch = (final({**base, "model": {"hidden": [50, 50], "norm": norm}}, "test_acc")
                     for norm in ("weight", "batch"))
    assert weight >= 0.75 and batch <= 0.5, (weight, batch)


def claim_9_precise_bn_recovers_what_lagging_running_statistics_lose():
    """Measured (the book's network, momentum 0.01, seed 0): test acc 0.100 with
    the running statistics, 0.910 after precise BN over 50 batches."""
    base = {"model": {"hidden": [100] * 5, "norm": "batch"}, "norm": {"momentum": 0.01},
            "init": {"weight_scale": 0.01},
            "train": {"epochs": 20, "batch_size": 100, "lr": 0.01}}
    lagging = final(base, "test_acc")
    precise = final({**base, "eval": {"precise_bn": 50}}, "test_acc")
    assert lagging <= 0.2 and precise >= 0.8, (lagging, precise)


def _drift(result):
    """input_drift on a result: the last hidden layer's unit-0 median, mean
    step-to-step move over mean spread."""
    unit = [d for d in result.diagnostics if d["layer"] == 5]
    moves = [abs(b["unit_p50"] - a["unit_p50"]) for a, b in zip(unit, unit[1:])]
    return (sum(moves) / len(moves)) / (sum(d["unit_p85"] - d["unit_p15"] for d in unit)
                                         / len(unit))


def claim_10_noisy_bn_moves_the_inputs_but_trains_as_fast():
    """Measured (the book's network at weight scale 0.01, 8 epochs, seed 0): train
    acc 0.984 with BN, 0.982 with noise 0.1; the inputs' drift grows severalfold."""
    base = {"model": {"hidden": [100] * 5, "norm": "batch"}, "init": {"weight_scale": 0.01},
            "train": {"epochs": 8, "batch_size": 100, "lr": 0.01},
            "eval": {"diagnostics_every": 5}}
    plain = run(base)
    noisy = run({**base, "norm": {"noise": 0.1}})
    acc = plain.metrics[-1]["train_acc"], noisy.metrics[-1]["train_acc"]
    assert acc[0] >= 0.8 and acc[1] >= acc[0] - 0.05, acc
    assert _drift(noisy) >= 2 * _drift(plain), (_drift(plain), _drift(noisy))


def claim_17_bn_lets_the_sigmoid_lenet_learn_in_its_first_epochs():
    """Measured (d2l's two LeNets on 1000 mnist5k images, batches of 50, seed
    0): train acc after epochs 1 and 2 with BN 0.553, 0.733; the plain LeNet
    0.100, 0.100 (still at chance)."""
    out = {}
    for norm, padding, lr in (("batch", "valid", 1.0), ("none", [2, "valid"], 0.9)):
        r = run({"data": {"n_train": 1000, "n_test": 500},
                 "model": {"arch": "cnn", "channels": [6, 16], "kernel": 5, "padding": padding,
                           "pool": "avg", "hidden": [120, 84], "activation": "sigmoid",
                           "norm": norm},
                 "init": {"weight_scale": "glorot_uniform"},
                 "train": {"epochs": 2, "batch_size": 50, "lr": lr}})
        out[norm] = r.metrics[-1]["train_acc"]
    assert out["batch"] >= 0.6 and out["none"] <= 0.2, out


CLAIMS = [claim_1_bn_learns_across_more_weight_scales,
          claim_2_bn_trains_sooner_and_keeps_sigmoid_inputs_steady,
          claim_3_bn_degrades_at_batch_2_group_and_layer_norm_do_not,
          claim_4_placement_matters_little_for_relu_and_after_is_not_worse_for_sigmoid,
          claim_5_bn_trains_at_a_learning_rate_where_the_plain_net_diverges,
          claim_6a_pytorch_running_variance_lags_at_momentum_001,
          claim_6b_book_running_statistics_do_not_lag_that_way,
          claim_6c_running_and_batch_statistics_agree_at_momentum_01,
          claim_7_unsynchronized_bn_on_pairs_loses_what_synchronized_bn_keeps,
          claim_8_weight_norm_keeps_working_at_batch_2_where_bn_fails,
          claim_9_precise_bn_recovers_what_lagging_running_statistics_lose,
          claim_10_noisy_bn_moves_the_inputs_but_trains_as_fast,
          claim_17_bn_lets_the_sigmoid_lenet_learn_in_its_first_epochs]


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.__name__)
def test_claim_holds(claim):
    claim()


def _no_op_optimizer(monkeypatch):
    for cls in (optim.SGD, optim.Momentum, optim.Adam):
        monkeypatch.setattr(cls, "step", lambda self: None)


def _no_normalization(monkeypatch):
    for cls in (norms.BatchNorm, norms.LayerNorm, norms.GroupNorm, norms.InstanceNorm):
        monkeypatch.setattr(cls, "forward", lambda self, x, train: x)
        monkeypatch.setattr(cls, "backward", lambda self, dy: dy)


@pytest.mark.parametrize("break_engine", [_no_op_optimizer, _no_normalization],
                         ids=["optimizer-does-nothing", "norms-do-nothing"])
@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.__name__)
def test_claim_fails_on_a_broken_engine(claim, break_engine, monkeypatch):
    break_engine(monkeypatch)
    with pytest.raises(AssertionError):
        claim()
