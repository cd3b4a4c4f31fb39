"""Storage behind every conclusion (bnexp.store) and the summaries over seeds
(bnexp.sweep.summary), with known answers: CSV round trips, run.json checks,
folder-name safety, the cache comparisons, and aggregate rows of one run."""

import json
import math

import pytest

from bnexp import store
from bnexp.store import StoreError
from bnexp.sweep.summary import aggregate_rows, columns, summary_row


def test_csv_text_round_trips_numbers_exactly(tmp_path):
    rows = [{"a": 0.1 + 0.2, "b": 3, "c": "x"}, {"a": 1e-5, "b": -2, "c": ""}]
    text = store.csv_text(rows, ["a", "b", "c"])
    assert text == "a,b,c\n0.30000000000000004,3,x\n1e-05,-2,\n"
    (tmp_path / "t.csv").write_text(text)
    back = store.read_csv(tmp_path / "t.csv", ["a", "b"])
    assert back == [{"a": 0.30000000000000004, "b": 3, "c": "x"}, {"a": 1e-05, "b": -2, "c": ""}]
    assert type(back[0]["b"]) is int and type(back[0]["a"]) is float
    raw = store.read_csv(tmp_path / "t.csv", parse=False)
    assert raw[0] == {"a": "0.30000000000000004", "b": "3", "c": "x"}
    assert store.csv_line({"a": 1.0, "b": None}, ["b", "a"]) == ",1.0\n"


def test_numpy_scalars_are_written_as_python_numbers():
    np = pytest.importorskip("numpy")
    assert store.csv_line({"a": np.float64(0.1), "b": np.int64(3)}, ["a", "b"]) == "0.1,3\n"


def test_read_csv_refuses_damaged_files_in_one_line(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("")
    with pytest.raises(StoreError, match=r"^.*t\.csv: empty file \(expected a header line\)$"):
        store.read_csv(p)
    p.write_text("a,b\n1,2\n")
    with pytest.raises(StoreError) as exc:
        store.read_csv(p, ["a", "c", "d"])
    assert str(exc.value) == f"{p}: missing column(s) c, d (damaged, or written by another program)"
    p.write_text("a,b\n1,2\n3\n")
    with pytest.raises(StoreError) as exc:
        store.read_csv(p)
    assert str(exc.value) == (f"{p}: line 3 has 1 fields, expected 2 (truncated or damaged "
                              "file)")
    with pytest.raises(StoreError) as exc:
        store.read_csv(tmp_path / "none.csv")
    assert str(exc.value) == f"{tmp_path / 'none.csv'}: no such file"
    p.write_bytes(b"a,b\n\xff,1\n")
    with pytest.raises(StoreError, match="not a readable CSV file"):
        store.read_csv(p)


def test_parse_and_json(tmp_path):
    assert store._parse("3") == 3 and store._parse("1e-3") == 0.001 and store._parse("x") == "x"
    assert store._parse("") == ""
    assert store.read_json(tmp_path / "none.json") is None
    (tmp_path / "a.json").write_text("[1]")
    assert store.read_json(tmp_path / "a.json") is None
    (tmp_path / "b.json").write_text("{bad")
    assert store.read_json(tmp_path / "b.json") is None
    store.write_json(tmp_path / "c.json", {"status": "completed"})
    assert store.read_json(tmp_path / "c.json") == {"status": "completed"}
    assert store.run_status(tmp_path / "nowhere") is None
    (tmp_path / "r").mkdir()
    store.write_json(tmp_path / "r" / "run.json", {"status": "diverged"})
    assert store.run_status(tmp_path / "r") == "diverged"
    store.write_json(tmp_path / "r" / "run.json", {})
    assert store.run_status(tmp_path / "r") is None


def test_final_values():
    info = {"final": {"train_acc": 0.9, "test_acc": 0.8, "train_loss": 0.3, "test_loss": 0.4,
                      "epoch": 5}, "best_test_acc": 0.85, "seconds": 12.0}
    assert store.final_values(info) == {
        "final_train_acc": 0.9, "final_test_acc": 0.8, "best_test_acc": 0.85,
        "final_train_loss": 0.3, "final_test_loss": 0.4, "epochs": 5, "seconds": 12.0}
    assert store.final_values({}) == dict.fromkeys(store.final_values(info))
    assert store.final_values({"final": None})["epochs"] is None


@pytest.mark.parametrize("name,ok", [
    ("run-1", True), ("a" * 255, True), ("a" * 256, False), ("é" * 128, False),
    ("é" * 127, True), ("", False), (".hidden", False), ("..", False), (".", False),
    ("a/b", False), ("a\\b", False), ("a\0b", False), (3, False), (None, False)])
def test_safe_component(name, ok):
    assert store.safe_component(name) is ok


@pytest.mark.parametrize("a,b,eq", [
    (None, None, True), (None, 0, False), (0, None, False), (1, 1.0, True), ("1", 1, True),
    ("0.5", 0.5, True), (math.nan, math.nan, True), (math.nan, 1.0, False), (1.0, 2.0, False),
    ("x", "x", True), ("x", "y", False), ("x", 1, False)])
def test_same_result(a, b, eq):
    assert store.same_result(a, b) is eq


GOOD = {"status": "completed", "seed": 1, "final": {"train_acc": 0.9, "test_acc": 0.8,
                                                     "train_loss": 0.1, "test_loss": 0.2,
                                                     "epoch": 3},
        "best_test_acc": 0.8, "seconds": 1.0, "step_seconds": 0.01, "variance_shift": 1.1}


@pytest.mark.parametrize("change,message", [
    ({"status": "done"}, 'status is "done", expected completed, diverged, failed, interrupted, '
                         "running, pending"),
    ({"seed": True}, "seed is true, expected an integer"),
    ({"seed": 1.5}, "seed is 1.5, expected an integer"),
    ({"final": [1]}, "final is [1], expected a mapping of the last evaluation"),
    ({"final": {"test_acc": "0.8"}}, 'final.test_acc is "0.8", expected a number'),
    ({"final": {"epoch": False}}, "final.epoch is false, expected a number"),
    ({"best_test_acc": "x"}, 'best_test_acc is "x", expected a number'),
    ({"seconds": True}, "seconds is true, expected a number"),
    ({"step_seconds": [1]}, "step_seconds is [1], expected a number"),
    ({"variance_shift": "1"}, 'variance_shift is "1", expected a number'),
    ({"final": None}, "final is null, expected the last evaluation of a completed run"),
    ({"status": "diverged", "final": None},
     "final is null, expected the last evaluation of a diverged run"),
])
def test_check_info_names_the_file_and_the_key(tmp_path, change, message):
    info = {**GOOD, **change}
    with pytest.raises(StoreError) as exc:
        store.check_info(info, tmp_path / "run.json")
    assert str(exc.value) == (f"{tmp_path / 'run.json'}: {message} (damaged or edited file; "
                              "rerun the run)")


def test_check_info_accepts_what_bnexp_writes(tmp_path):
    store.check_info(GOOD, tmp_path / "run.json")
    store.check_info({}, tmp_path / "run.json")
    store.check_info({"status": "failed", "final": None}, tmp_path / "run.json")
    store.check_info({**GOOD, "seed": None, "final": {"test_acc": None, "epoch": 2}},
                     tmp_path / "run.json")
    assert store.info_text({"final": {"a": 1}}, "final.a") == "1"
    assert store.info_text({"final": 3}, "final.a") == "null"


def test_a_run_record_reads_its_folder(tmp_path):
    r = store.RunRecord("r", tmp_path, {"train.lr": 0.001, "model.hidden": [8, 8]}, 0, {})
    assert r.status == "pending" and r.metrics == [] and r.table("ics") is None
    assert r.labels == {"train.lr": "0.001", "model.hidden": "8x8"}
    assert r.final["final_test_acc"] is None
    store.write_metrics(tmp_path, [{"epoch": 1, "step": 5, "train_loss": 0.5, "train_acc": 0.7,
                                    "test_loss": 0.6, "test_acc": 0.65, "elapsed": 1.5}])
    assert r.metrics == []  # read once, then kept
    r = store.RunRecord("r", tmp_path, {}, 0, {"status": "completed"})
    assert r.status == "completed"
    assert r.metrics[0]["test_acc"] == 0.65 and r.metrics[0]["epoch"] == 1
    (tmp_path / "steps.csv").write_text(store.csv_text([{"step": 1, "epoch": 0, "loss": 2.0}],
                                                       store.STEP_COLUMNS))
    assert r.table("steps") == [{"step": 1, "epoch": 0, "loss": 2.0}]


def test_counts_and_axis():
    runs = [store.RunRecord(str(i), None, {}, 0, {"status": s} if s else {})
            for i, s in enumerate(["completed", "diverged", None, "completed", "failed"])]
    folder = store.SweepFolder(None, {}, [("a", [1, 2]), ("b", ["x"])], (), [0], None, None, runs)
    assert folder.counts() == {"completed": 2, "diverged": 1, "failed": 1, "pending": 1}
    assert list(folder.counts()) == ["completed", "diverged", "failed", "pending"]
    assert folder.axis("b") == ["x"] and folder.axis("a") == [1, 2]
    with pytest.raises(KeyError):
        folder.axis("c")


def test_prepare_run_dir_refuses_then_clears_the_old_runs_files(tmp_path):
    d = tmp_path / "run"
    store.prepare_run_dir(d, force=False)
    store.write_json(d / "run.json", {"status": "completed"})
    (d / "metrics.csv").write_text("x")
    (d / "notes.txt").write_text("mine")
    (d / ".run.json.abc.tmp").write_text("left by a killed writer")
    with pytest.raises(store.RunExistsError, match="already holds a run; pass --force"):
        store.prepare_run_dir(d, force=False)
    store.prepare_run_dir(d, force=True, keep=("metrics.csv",))
    assert sorted(p.name for p in d.iterdir()) == ["metrics.csv", "notes.txt"]
    only_metrics = tmp_path / "m"
    only_metrics.mkdir()
    (only_metrics / "metrics.csv").write_text("x")
    with pytest.raises(store.RunExistsError):
        store.prepare_run_dir(only_metrics, force=False)


def test_write_run_writes_tables_of_finished_runs_and_run_json_last(tmp_path):
    payload = {"info": {"status": "failed"}, "metrics": [],
               "diagnostics": [dict.fromkeys(store.DIAGNOSTIC_COLUMNS, 0)],
               "steps": [{"step": 1, "epoch": 0, "loss": 1.0}], "curves": b"png"}
    store.write_run(tmp_path / "f", "cfg: 1\n", payload)
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["config.yaml", "curves.png",
                                                                  "run.json"]
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "checkpoint.npz").write_bytes(b"x")
    payload = {**payload, "info": {"status": "completed"},
               "metrics": [dict.fromkeys(store.METRIC_COLUMNS, 1)],
               "landscape": [dict.fromkeys(store.LANDSCAPE_COLUMNS, 2)],
               "ics": [dict.fromkeys(store.ICS_COLUMNS, 3)], "model": b"npz"}
    store.write_run(tmp_path / "c", "cfg: 1\n", payload)
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [
        "config.yaml", "curves.png", "diagnostics.csv", "ics.csv", "landscape.csv",
        "metrics.csv", "model.npz", "run.json", "steps.csv"]
    assert json.loads((tmp_path / "c" / "run.json").read_text()) == {"status": "completed"}
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "checkpoint.npz").write_bytes(b"x")
    store.write_run(tmp_path / "r", "", {"info": {"status": "interrupted"}, "metrics": []})
    assert (tmp_path / "r" / "checkpoint.npz").exists()  # to resume from


def test_atomic_write_and_stale_temp(tmp_path):
    store.atomic_write(tmp_path / "a" / "f.txt", "one")
    store.atomic_write(tmp_path / "a" / "f.txt", b"two")
    assert (tmp_path / "a" / "f.txt").read_bytes() == b"two"
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["f.txt"]
    (tmp_path / "a" / ".f.txt.x.tmp").write_text("")
    (tmp_path / "a" / "sub").mkdir()
    (tmp_path / "a" / "sub" / ".g.y.tmp").write_text("")
    assert [p.name for p in store.remove_stale_temp(tmp_path / "a")] == [".f.txt.x.tmp"]
    assert [p.name for p in store.remove_stale_temp(tmp_path / "a", recursive=True)] == [
        ".g.y.tmp"]
    assert store.remove_stale_temp(tmp_path / "missing") == []
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError) as exc:
        store.atomic_write(tmp_path / "file" / "x.txt", "x")
    assert str(exc.value) == (f"cannot create folder {tmp_path / 'file'}: {tmp_path / 'file'} "
                              "is a file, not a folder")


def test_the_folder_lock_refuses_a_second_holder(tmp_path):
    with store.lock(tmp_path, "sweep"):
        assert (tmp_path / ".lock").read_text().startswith("bnexp sweep, pid ")
        with pytest.raises(StoreError) as exc:
            with store.lock(tmp_path, "train"):
                pass
        assert str(exc.value).startswith(f"{tmp_path} is in use by another bnexp process "
                                         "(bnexp sweep, pid ")
    assert not (tmp_path / ".lock").exists()  # removed on release
    with store.lock(tmp_path, "train"):
        assert (tmp_path / ".lock").read_text().startswith("bnexp train, pid ")
    assert not (tmp_path / ".lock").exists()


# --- summaries -----------------------------------------------------------------------

class P:
    run_id, values, seed = "p0", {"train.lr": 0.001, "model.hidden": [8, 8]}, 2


def test_summary_row_of_a_run_not_started_and_of_a_finished_one():
    row = summary_row(P, {})
    assert row == {"run_id": "p0", "train.lr": "0.001", "model.hidden": "[8, 8]", "seed": 2,
                   "status": "pending", "final_train_acc": "", "final_test_acc": "",
                   "best_test_acc": "", "final_train_loss": "", "final_test_loss": "",
                   "epochs": "", "seconds": ""}
    assert summary_row(P, {"status": None})["status"] == "pending"
    row = summary_row(P, GOOD)
    assert (row["status"], row["final_test_acc"], row["epochs"], row["seconds"]) == (
        "completed", 0.8, 3, 1.0)


def test_aggregate_of_a_point_with_one_run():
    row = {"train.lr": "0.1", "status": "completed", "final_train_acc": 0.5,
           "final_test_acc": 0.25, "best_test_acc": 0.5, "final_train_loss": 2.0,
           "final_test_loss": 2.0, "epochs": 1, "seconds": 3.0}
    (agg,) = aggregate_rows(["train.lr"], [row])
    assert (agg["train.lr"], agg["n"], agg["n_diverged"], agg["n_failed"]) == ("0.1", 1, 0, 0)
    assert (agg["final_test_acc_mean"], agg["final_test_acc_std"], agg["final_test_acc_n"]) == (
        0.25, 0.0, 1)
    assert (agg["final_test_acc_ci_lo"], agg["final_test_acc_ci_hi"]) == pytest.approx(
        (0.25 * 0.025, 1 - 0.75 * 0.025))
    assert agg["seconds_ci_hi"] == math.inf
    (empty,) = aggregate_rows(["train.lr"], [{**row, "status": "failed"}])
    assert (empty["n"], empty["n_failed"], empty["final_test_acc_n"]) == (0, 1, 0)
    assert math.isnan(empty["final_test_acc_ci_lo"]) and math.isnan(empty["final_test_acc_mean"])
    summary, aggregate = columns(["train.lr"])
    assert summary[:4] == ["run_id", "train.lr", "seed", "status"]
    assert aggregate[:4] == ["train.lr", "n", "n_diverged", "n_failed"]
    assert aggregate[4:9] == ["final_train_acc_mean", "final_train_acc_std",
                              "final_train_acc_ci_lo", "final_train_acc_ci_hi",
                              "final_train_acc_n"]


def test_reading_a_folder_as_a_file_is_one_line(tmp_path):
    with pytest.raises(StoreError) as exc:
        store.read_csv(tmp_path)
    assert str(exc.value) == f"{tmp_path}: is a folder, expected a CSV file (a regular file)"


def test_a_sweep_folder_is_named_for_its_folder():
    assert store.SweepFolder(store.Path("runs/sw"), {}, [], (), [], None, None, []).name == "sw"


def _metrics_rows(r, acc):
    store.write_metrics(r.path, [{"epoch": 1, "step": 1, "train_loss": 1.0, "train_acc": acc,
                                  "test_loss": 1.0, "test_acc": acc, "elapsed": 0.0}])


def test_summary_rows_are_cross_checked_against_finished_runs_only(tmp_path):
    running = store.RunRecord("a", tmp_path / "a", {}, 0, {"status": "running"})
    (tmp_path / "a").mkdir()
    _metrics_rows(running, 0.5)  # a partial run: its metrics have no final to agree with
    assert store._disagreements(running, {"status": "running", "final_test_acc": ""}, "w") == []
    assert store._disagreements(running, {"status": "completed"}, "w") == [
        f"w: status completed, but {tmp_path / 'a' / 'run.json'} says running; reports use "
        "run.json (rerun the sweep's command to rewrite the summary)"]
    done = store.RunRecord("b", tmp_path / "b", {}, 0, {**GOOD})
    (tmp_path / "b").mkdir()
    _metrics_rows(done, 0.9)
    assert store._disagreements(done, {"status": "completed", "final_test_acc": "0.7",
                                       "epochs": "3"}, "w") == [
        f"w: final_test_acc 0.7, but {tmp_path / 'b' / 'run.json'} says 0.8; reports use "
        "run.json (rerun the sweep's command to rewrite the summary)",
        f"{tmp_path / 'b' / 'metrics.csv'}: line 2: test_acc 0.9, but "
        f"{tmp_path / 'b' / 'run.json'} says 0.8 (damaged or edited file)"]


def test_a_failed_run_keeps_no_measurement_tables(tmp_path):
    payload = {"info": {"status": "failed"}, "metrics": [],
               "landscape": [dict.fromkeys(store.LANDSCAPE_COLUMNS, 2)],
               "ics": [dict.fromkeys(store.ICS_COLUMNS, 3)]}
    store.write_run(tmp_path / "f", "", payload)
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["config.yaml", "run.json"]


def test_run_json_is_indented_json(tmp_path):
    store.write_json(tmp_path / "run.json", {"status": "completed", "final": {"epoch": 1}})
    assert (tmp_path / "run.json").read_text() == (
        '{\n  "status": "completed",\n  "final": {\n    "epoch": 1\n  }\n}')


def test_a_file_above_a_missing_folder_is_named(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError) as exc:
        store.atomic_write(tmp_path / "file" / "sub" / "x.txt", "x")
    assert str(exc.value) == (f"cannot create folder {tmp_path / 'file' / 'sub'}: "
                              f"{tmp_path / 'file'} is a file, not a folder")
