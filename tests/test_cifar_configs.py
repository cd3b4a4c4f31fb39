"""The shipped CIFAR-10 experiments (ResNet-20 batch vs group norm, the
VGG-style network with and without BN): they dry-run cleanly against files
generated in CIFAR-10's exact binary format, with the shipped settings, and
``bnexp list`` marks them as needing the download where the data is not here.
The generated files hold the record counts the configs ask for (10,000
training images) through the reader's test hook."""

import cifardata
import pytest
from click.testing import CliRunner

from bnexp import experiments
from bnexp.cli import main
from bnexp.sweep import load

SHIPPED = ["cifar_resnet20", "cifar_vgg_bn"]


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    cifardata.write_folder(root / "cifar10", n_train=10_000, n_test=2_000)
    return root


def test_the_cifar_experiments_use_cifar10_at_its_own_image_size():
    for name in SHIPPED:
        points = load(experiments.path(name)).points
        assert {p.config.data.dataset for p in points} == {"cifar10"}
    resnet = load(experiments.path("cifar_resnet20")).points[0].config.model
    assert (resnet.arch, resnet.channels, resnet.blocks) == ("resnet", (16, 32, 64), 3)


@pytest.mark.parametrize("name,runs", [("cifar_resnet20", 36), ("cifar_vgg_bn", 12)])
def test_the_cifar_experiments_dry_run_against_generated_files(name, runs, cifar_root,
                                                               monkeypatch, tmp_path):
    from bnexp.sweep import estimate

    cifardata.use_small(monkeypatch, 10_000, 2_000)
    monkeypatch.setenv("BNEXP_DATA", str(cifar_root))
    # the estimate builds and times every model; fewer timed steps keep this quick
    monkeypatch.setattr(estimate, "TIMED_STEPS", 1)
    monkeypatch.setattr(estimate, "EVAL_SAMPLES", 4)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["sweep", name, "--dry-run"])
    assert res.exit_code == 0, res.output
    assert f"{runs} runs" in res.output and "estimated time" in res.output
    assert "not on this machine" not in res.output
    assert not (tmp_path / "runs").exists()  # a dry run writes nothing


def test_list_marks_the_cifar_experiments_until_the_data_is_here(cifar_root, monkeypatch,
                                                                 tmp_path):
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.setenv("BNEXP_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def rows():
        res = CliRunner().invoke(main, ["list"])
        assert res.exit_code == 0, res.output
        return {ln.split()[0]: ln for ln in res.output.splitlines()[1:] if ln[:1] != " "}

    before = rows()
    for name in SHIPPED:
        assert before[name].endswith("(needs: bnexp data download cifar10)"), before[name]
    assert "needs:" not in before["lenet_bn"]
    monkeypatch.setenv("BNEXP_DATA", str(cifar_root))
    after = rows()
    assert not any("needs:" in after[name] for name in SHIPPED)


def test_a_cifar_resnet_trains_on_generated_files_at_3x32x32(cifar_root, monkeypatch, tmp_path):
    """The ordinary path: ``bnexp train`` on the shipped ResNet config (made
    small with --set), reading the generated files; the model takes 3 x 32 x
    32 images, as its model file says."""
    from bnexp import modelfile

    cifardata.use_small(monkeypatch, 10_000, 2_000)
    monkeypatch.setenv("BNEXP_DATA", str(cifar_root))
    res = CliRunner().invoke(main, [
        "train", str(experiments.path("cifar_resnet20")), "--out", str(tmp_path), "-q",
        "--set", "data.n_train=40", "--set", "data.n_test=20", "--set", "train.epochs=1",
        "--set", "train.batch_size=20", "--set", "model.channels=[4,8]",
        "--set", "model.blocks=1", "--set", "model.norm=group", "--set", "model.groups=2"])
    assert res.exit_code == 0, res.output
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    net, _ = modelfile.load_model(run / modelfile.MODEL_FILE)
    assert net.input_shape == (3, 32, 32) and net.layers[0].in_channels == 3
