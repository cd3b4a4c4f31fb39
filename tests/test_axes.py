"""The reduction-axes figure: the sets it shows are measured from the layers,
and what it reports each norm leaving behind is what that norm guarantees."""

import numpy as np
from clitools import invoke

from bnexp.axes import measure


def test_measured_sets_and_statistics_are_each_norms_own():
    batch, channels, groups, mark = 5, 6, 3, (1, 2)
    _, panels = measure(batch, channels, groups, seed=1, mark=mark)
    by = {p.name.split()[0]: p for p in panels}
    n, c = mark
    expected = {name: np.zeros((batch, channels), bool) for name in by}
    expected["batch"][:, c] = True  # one channel, every sample
    expected["layer"][n, :] = True  # one sample, every channel
    expected["group"][n, 2:4] = True  # one sample, the marked channel's group of 2
    expected["instance"][n, c] = True  # one plane
    for name, panel in by.items():
        np.testing.assert_array_equal(panel.shared, expected[name], err_msg=name)
    assert by["batch"].axes == (0, 2, 3) and by["instance"].axes == (2, 3)
    assert by["layer"].axes == by["group"].axes == (1, 2, 3)
    # what each one zeroes (equal-sized planes: the mean of plane means is the set's mean)
    np.testing.assert_allclose(by["batch"].mean.mean(axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(by["layer"].mean.mean(axis=1), 0, atol=1e-9)
    np.testing.assert_allclose(by["group"].mean.reshape(batch, groups, -1).mean(axis=2), 0,
                               atol=1e-9)
    np.testing.assert_allclose(by["instance"].mean, 0, atol=1e-9)
    np.testing.assert_allclose(by["instance"].std, 1, atol=1e-3)  # eps 1e-5 aside
    assert np.abs(by["batch"].mean).max() > 0.05  # BN leaves per-plane means alone


def test_axes_command_writes_the_figure_and_refuses_bad_groups(tmp_path):
    out = tmp_path / "axes.svg"
    res = invoke("axes", "--out", out, "--channels", "4", "--groups", "2", "--batch", "3")
    assert res.exit_code == 0, res.output
    assert out.read_text().lstrip().startswith("<?xml")
    res = invoke("axes", "--out", tmp_path / "b.png", "--groups", "3")
    assert res.exit_code == 2
    assert res.output.strip() == "error: --groups: got 3, expected a divisor of --channels 8"
    assert not (tmp_path / "b.png").exists()
