"""`clarena compare OLD NEW`: exact scores on hand-made prediction files, the fields of
`compare.json`, each gate's exit status, one-line refusals that write nothing, an escaped page,
run folders and checkpoints (with their flipped test images), and no torch for prediction files."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from clarena.commands.compare import main
from clarena.reports.compare import png_bytes

pytestmark = pytest.mark.integration

# index:       0  1  2  3  4  5  6  7  8  9 10 11
LABELS = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
OLD = [0, 0, 0, 1, 1, 1, 1, 0, 2, 2, 0, 0]  # right at 0 1 2 4 5 6 8 9 -> 8
NEW = [0, 1, 0, 1, 1, 2, 1, 1, 2, 0, 2, 0]  # right at 0 2 4 6 7 8 10 -> 7
# both right 5; negative flips 1 5 9 (3); positive flips 7 10 (2); both wrong 3 11 (2)
GROUPS = ["a", "b"] * 6


def write_csv(path: Path, labels, preds, ids=None, groups=None) -> Path:
    columns = {"label": labels, "prediction": preds, "id": ids, "group": groups}
    columns = {name: values for name, values in columns.items() if values is not None}
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(zip(*columns.values()))
    return path


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    ids = list(range(100, 112))
    old = write_csv(tmp_path / "old.csv", LABELS, OLD, ids, GROUPS)
    new = write_csv(tmp_path / "new.csv", LABELS, NEW, ids, GROUPS)
    return old, new


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_hand_made_prediction_files_give_exact_scores_in_compare_json(pair, tmp_path, capsys):
    code, out, err = run(capsys, *pair, "--out", tmp_path / "out")
    assert code == 0 and err == ""
    data = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert list(data) == [
        "n",
        "old_accuracy",
        "new_accuracy",
        "nfr",
        "pfr",
        "nfi",
        "btc",
        "bec",
        "mcnemar_p",
        "per_class",
        "per_group",
        "gates",
    ]
    assert data["n"] == 12
    assert (data["old_accuracy"], data["new_accuracy"]) == (8 / 12, 7 / 12)
    assert (data["nfr"], data["pfr"], data["nfi"]) == (3 / 12, 2 / 12, 3 / 5)
    assert (data["btc"], data["bec"], data["mcnemar_p"]) == (5 / 8, 2 / 5, 1.0)
    assert [(c["class"], c["n"], c["nfr"]) for c in data["per_class"]] == [
        (0, 4, 0.25),
        (1, 4, 0.25),
        (2, 4, 0.25),
    ]
    assert set(data["per_class"][0]) == {"class", "n", "nfr", "ci_low", "ci_high"}
    assert [(g["group"], g["n"], g["nfr"]) for g in data["per_group"]] == [
        ("a", 6, 0.0),
        ("b", 6, 0.5),
    ]
    assert data["gates"] == []
    assert "NFI" in out and "  25.00  16.67  60.00  62.50  40.00" in out


def test_npz_files_with_string_labels_and_no_groups(tmp_path, capsys):
    names = np.array(["cat", "dog", "cow"])
    for name, preds in (("old", OLD), ("new", NEW)):
        np.savez(tmp_path / f"{name}.npz", label=names[LABELS], prediction=names[preds])
    code, _, _ = run(capsys, tmp_path / "old.npz", tmp_path / "new.npz", "--out", tmp_path / "o")
    data = json.loads((tmp_path / "o" / "compare.json").read_text())
    assert code == 0 and "per_group" not in data
    assert [c["class"] for c in data["per_class"]] == ["cat", "cow", "dog"]
    assert data["nfr"] == 3 / 12 and data["nfi"] == 3 / 5


GATES = [
    (["--max-nfr", "0.25"], 0, None),
    (["--max-nfr", "0.2"], 1, "gate max_nfr failed: NFR 0.25 > limit 0.2"),
    (["--max-class-nfr", "0.25"], 0, None),
    (["--max-class-nfr", "0.2"], 1, "gate max_class_nfr failed: NFR of class 0 0.25 > limit 0.2"),
    (["--min-accuracy-gain", "-8.5"], 0, None),
    (["--min-accuracy-gain", "0"], 1, "gate min_accuracy_gain failed: accuracy gain (points) "),
    (["--alpha", "0.05"], 0, None),  # p = 1: not significantly worse
]


@pytest.mark.parametrize(("gate", "code", "line"), GATES)
def test_each_gate_sets_the_exit_status(pair, tmp_path, capsys, gate, code, line):
    status, _, err = run(capsys, *pair, "--out", tmp_path / "out", *gate)
    assert status == code
    assert err.splitlines() == ([] if line is None else [err.splitlines()[0]])
    if line is not None:
        assert line in err
    gates = json.loads((tmp_path / "out" / "compare.json").read_text())["gates"]
    assert [(g["name"], g["passed"]) for g in gates] == [(gate[0][2:].replace("-", "_"), not code)]


def test_a_significantly_worse_update_fails_alpha_and_every_failure_has_its_line(tmp_path, capsys):
    old = write_csv(tmp_path / "old.csv", [0] * 20, [0] * 20)
    new = write_csv(tmp_path / "new.csv", [0] * 20, [1] * 12 + [0] * 8)  # 12 flips, none fixed
    args = ["--alpha", "0.05", "--max-nfr", "0.6", "--max-class-nfr", "0.1"]  # NFR 0.6 passes
    code, _, err = run(capsys, old, new, "--out", tmp_path / "out", *args)
    assert code == 1
    lines = err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("clarena compare: gate max_class_nfr failed: NFR of class 0 0.6 >")
    assert lines[1] == (
        "clarena compare: gate alpha failed: McNemar p of an update with more negative than "
        "positive flips 0.000488281 < limit 0.05"
    )


def _refused(capsys, tmp_path, *argv) -> str:
    out_dir = tmp_path / "refused"
    code, out, err = run(capsys, *argv, "--out", out_dir)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("clarena compare: error: ")
    assert not out_dir.exists()  # nothing written
    return err


def test_bad_inputs_exit_2_with_one_line_and_write_nothing(pair, tmp_path, capsys):
    old, new = pair
    short = write_csv(tmp_path / "short.csv", LABELS[:-1], NEW[:-1])
    assert "has 12 samples and" in _refused(capsys, tmp_path, old, short)
    other = write_csv(tmp_path / "other.csv", [1, *LABELS[1:]], NEW)
    assert "labels of" in _refused(capsys, tmp_path, old, other)
    assert "disagree at row 1 (0 vs 1)" in _refused(capsys, tmp_path, old, other)
    ids = write_csv(tmp_path / "ids.csv", LABELS, NEW, list(range(111, 99, -1)))
    assert "differ at row 1 ('100' vs '111')" in _refused(capsys, tmp_path, old, ids)
    (tmp_path / "bad.csv").write_text("label,guess\n0,0\n")
    assert "no 'prediction' column" in _refused(capsys, tmp_path, old, tmp_path / "bad.csv")
    (tmp_path / "bad.npz").write_bytes(b"not a zip file")
    assert "cannot read" in _refused(capsys, tmp_path, old, tmp_path / "bad.npz")
    (tmp_path / "empty.csv").write_text("label,prediction\n0,\n")
    assert "empty value at row 1" in _refused(capsys, tmp_path, tmp_path / "empty.csv", new)
    assert "does not exist" in _refused(capsys, tmp_path, old, tmp_path / "missing.csv")
    assert "is not a fraction in [0, 1]" in _refused(capsys, tmp_path, old, new, "--max-nfr", "2")
    assert "significance level" in _refused(capsys, tmp_path, old, new, "--alpha", "0")
    (tmp_path / "a_file").write_text("")
    code, _, err = run(capsys, old, new, "--out", tmp_path / "a_file")
    assert code == 2 and "is a file" in err


def test_the_page_escapes_labels_and_paths(tmp_path, capsys):
    evil = tmp_path / '<img src=x onerror="alert(1)">'
    evil.mkdir()
    labels = ["<script>alert(1)</script>", "b&b"] * 3
    old = write_csv(evil / "old.csv", labels, labels, groups=['"><i>g</i>'] * 6)
    new = write_csv(evil / "new.csv", labels, labels[::-1])
    code, _, _ = run(capsys, old, new, "--out", tmp_path / "out")
    page = (tmp_path / "out" / "compare.html").read_text()
    assert code == 0
    assert "<script>" not in page and "<i>g</i>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "b&amp;b" in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    assert "NFR per group" in page and "Old → new flip matrix" in page


def test_png_bytes_round_trip_through_pillow():
    from PIL import Image

    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    rgb = np.stack([gray, 255 - gray, gray // 2], axis=2)
    for image in (gray, rgb, gray[:, :, None]):
        decoded = np.asarray(Image.open(io.BytesIO(png_bytes(image))))
        assert np.array_equal(decoded, image.squeeze())


def test_prediction_files_are_compared_without_importing_torch(pair, tmp_path):
    code = (
        "import sys; from clarena.cli import main; "
        f"rc = main(['compare', {str(pair[0])!r}, {str(pair[1])!r}, '--out', "
        f"{str(tmp_path / 'o')!r}]); "
        "print(rc, [m for m in ('torch', 'lightning', 'hydra', 'matplotlib') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "0 []"


# --- run folders and checkpoints ----------------------------------------------------------------

DATASET = {
    "_target_": "clarena.cl_datasets.SplitCLDataset",
    "source": "digits",
    "scenario": "TIL",
    "seed": 1,
    "num_tasks": 2,
    "classes_per_task": 2,
}


def make_run(run_dir: Path, flip: int, dataset: dict | None = None) -> Path:
    """A finished two-task run folder of split digits whose final model is right on every test
    sample of task 1 and task 2 but the first `flip` of task 2 (predictions saved as by
    `clarena train`: the metrics state of `checkpoints/after_task_<t>.pt`)."""
    import torch

    from clarena.cl_datasets import SplitCLDataset
    from clarena.metrics import CLResults
    from clarena.run_folder.checkpoint import save_task_checkpoint

    dataset = dataset or DATASET
    config = {"scenario": "TIL", "seed": 1, "cl_dataset": dataset}
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    data = SplitCLDataset(**{k: v for k, v in dataset.items() if k != "_target_"})
    results = CLResults("TIL")
    for t in (1, 2):
        for j in range(1, t + 1):
            _, classes = data.task_samples(j, "test")
            lut = data.label_map(j)
            targets = torch.tensor([lut[int(c)] for c in classes])
            preds = targets.clone()
            if t == 2 and j == 2:
                preds[:flip] = 1 - preds[:flip]
            results.add(after_task=t, test_task=j, preds=preds, targets=targets)
        save_task_checkpoint(run_dir, t, 2, {}, results.state_dict(), config)
    return run_dir


@pytest.mark.slow  # about 25 s on the 2-core VM, mostly importing Lightning for the checkpoints
def test_run_folders_compare_the_final_models_with_a_gallery_of_flipped_images(tmp_path, capsys):
    old, new = make_run(tmp_path / "old", 0), make_run(tmp_path / "new", 5)
    code, _, err = run(capsys, old, new, "--out", tmp_path / "out", "--max-nfr", "0.01")
    assert code == 1 and "gate max_nfr failed" in err
    data = json.loads((tmp_path / "out" / "compare.json").read_text())
    task_sizes = [g["n"] for g in data["per_group"]]
    assert [g["group"] for g in data["per_group"]] == ["task 1", "task 2"]
    assert data["n"] == sum(task_sizes) and data["nfr"] == 5 / data["n"]
    assert [g["nfr"] for g in data["per_group"]] == [0.0, 5 / task_sizes[1]]
    page = (tmp_path / "out" / "compare.html").read_text()
    thumbs = re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="task 2 #(\d)', page)
    assert [int(i) for _, i in thumbs] == [0, 1, 2, 3, 4]
    from PIL import Image

    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(thumbs[0][0]))))
    assert image.shape == (8, 8)  # the 8x8 digit itself
    code, _, _ = run(capsys, old / "checkpoints" / "after_task_2.pt", new, "--out", tmp_path / "c")
    assert code == 0
    again = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert again["nfr"] == data["nfr"]


@pytest.mark.slow
def test_runs_on_different_datasets_are_refused(tmp_path, capsys):
    old = make_run(tmp_path / "old", 0)
    new = make_run(tmp_path / "new", 0, {**DATASET, "seed": 2, "shuffle_classes": True})
    err = _refused(capsys, tmp_path, old, new)
    assert "were tested on different datasets (cl_dataset.seed: 1 vs 2)" in err


@pytest.mark.slow  # one tiny clarena train run (2 tasks of split digits, 3 steps): ~30 s here
def test_a_checkpoint_tested_on_a_dataset_config_reproduces_its_saved_predictions(tmp_path, capsys):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_train_support import clarena

    args = ("cl_algorithm=finetuning", "cl_dataset.num_tasks=2", "trainer.max_epochs=-1")
    proc = clarena(
        "train", *args, "trainer.max_steps=3", f"output_dir={tmp_path / 'run'}", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    dataset = Path(__file__).parents[2] / "clarena" / "configs" / "cl_dataset" / "split_digits.yaml"
    checkpoint = tmp_path / "run" / "checkpoints" / "after_task_2.pt"
    out = tmp_path / "out"
    code, _, err = run(
        capsys, tmp_path / "run", checkpoint, "--out", out, "--max-nfr", "0", "--dataset", dataset
    )
    assert code == 2 and "--dataset tests the models of task checkpoints" in err
    code, _, err = run(
        capsys, checkpoint, checkpoint, "--out", out, "--max-nfr", "0", "--dataset", dataset
    )
    assert code == 0, err
    data = json.loads((out / "compare.json").read_text())
    # split_digits.yaml has 5 tasks; the model has heads for the 2 it was trained on
    assert [g["group"] for g in data["per_group"]] == ["task 1", "task 2"]
    from clarena.commands.compare_runs import predict_on_dataset, read_checkpoint

    rebuilt, saved = predict_on_dataset(checkpoint, dataset), read_checkpoint(checkpoint)
    # the model rebuilt from the checkpoint predicts what the run saved, on the same samples
    assert np.array_equal(rebuilt.labels, saved.labels)
    assert np.array_equal(rebuilt.predictions, saved.predictions)
    assert np.array_equal(rebuilt.tasks, saved.tasks) and data["n"] == len(saved.labels)
    (tmp_path / "evil.yaml").write_text("_target_: os.system\ncommand: echo hi\n")
    err = _refused(capsys, tmp_path, checkpoint, checkpoint, "--dataset", tmp_path / "evil.yaml")
    assert "'os.system', which is not one of clarena's components" in err
    # a checkpoint's own config is received data: no resolver in it is evaluated
    import torch

    state = torch.load(checkpoint, weights_only=True)
    state["config"]["experiment_name"] = "${oc.env:HOME}"
    leaky = tmp_path / "after_task_2.pt"
    torch.save(state, leaky)
    err = _refused(capsys, tmp_path, leaky, leaky, "--dataset", dataset)
    assert "experiment_name" in err and "${oc.env:...}" in err
