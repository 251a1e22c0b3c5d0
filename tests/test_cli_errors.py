"""Every subcommand answers bad input with one line naming the option or path, never a
traceback: exit 2 for a usage error (argparse), 1 for a run that failed."""

import errno

import pytest

from bgbias.cli import main

USAGE, FAILED = 2, 1


def run(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's usage errors
        code = stop.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


BAD_OPTIONS = [
    (["masks", "IMG", "OUT", "--workers", "0"], "--workers: must be >= 1, got 0"),
    (["masks", "IMG", "OUT", "--batch-size", "0"], "--batch-size: must be >= 1, got 0"),
    (["masks", "IMG", "OUT", "--device", "tpu"], "--device: device 'tpu' is not one of"),
    (["attention", "m.ckpt", "--images-per-pass", "0"], "--images-per-pass: must be >= 1"),
    (["attention", "m.ckpt", "--limit", "-1"], "--limit: must be >= 1, got -1"),
    (["attention", "m.ckpt", "--figures", "-2"], "--figures: must be >= 0, got -2"),
    (["evaluate", "m.ckpt", "--batch-size", "0"], "--batch-size: must be >= 1, got 0"),
    (["evaluate", "m.ckpt", "--repeats", "-1"], "--repeats: must be >= 0, got -1"),
    (["evaluate", "m.ckpt", "--workers", "-1"], "--workers: must be >= 0, got -1"),
    (["evaluate", "m.ckpt", "--device", "cuda:x"], "--device: device 'cuda:x' is not one of"),
    (["demo", "--repeats", "-1"], "--repeats: must be >= 1, got -1"),
    (["demo", "--epochs", "0"], "--epochs: must be >= 1, got 0"),
    (["demo", "--loss", "magic"], "--loss: invalid choice: 'magic'"),
    (["data", "generate", "OUT", "--image-size", "0"], "--image-size: must be >= 16, got 0"),
    (["data", "generate", "OUT", "--home-probability", "2"], "--home-probability: must be in"),
    (["data", "generate", "OUT", "--images-per-class", "one"], "expected an integer, got 'one'"),
    (["data", "split", "ROOT", "--val", "-0.1"], "--val: must be in [0, 1], got -0.1"),
    (["data", "import", "imagenet", "X", "--root", "R"], "name: invalid choice: 'imagenet'"),
    (["report", "x.json", "--metric", "recall"], "--metric: invalid choice: 'recall'"),
    (["masks", "IMG", "OUT", "--model", "sam"], "--model: invalid choice: 'sam'"),
    (["list", "everything"], "kind: invalid choice: 'everything'"),
    (["audit", "small_cnn", "IMG", "--repeats", "0"], "--repeats: must be >= 1, got 0"),
    (["audit", "small_cnn", "IMG", "--mean", "0.5,0.5"], "--mean: expected three numbers"),
    (["audit", "small_cnn", "IMG", "--mask-model", "sam"], "--mask-model: invalid choice"),
    (["export", "m.ckpt", "m.onnx", "--format", "tflite"], "--format: invalid choice: 'tflite'"),
    (["index", "m.ckpt", "CAT", "--out", "I", "--index", "lsh"], "--index: invalid choice"),
    (["index", "m.ckpt", "CAT", "--out", "I", "--chunk-size", "0"], "--chunk-size: must be >="),
    (["serve", "I", "--port", "70000"], "--port: must be <= 65535, got 70000"),
    (["serve", "I", "--max-upload-mb", "0"], "--max-upload-mb: must be > 0"),
    (["serve", "I", "--max-batch", "0"], "--max-batch: must be >= 1, got 0"),
    (["serve", "I", "--batch-window-ms", "-5"], "--batch-window-ms: must be >= 0, got -5.0"),
    (["reproduce", "cub200/*/*", "--launcher", "pbs"], "--launcher: invalid choice: 'pbs'"),
    (["reproduce", "cub200/*/*", "--repeats", "-1"], "--repeats: must be >= "),
    (["backgrounds", "fetch", "imagenet"], "invalid choice: 'imagenet'"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_OPTIONS, ids=lambda a: " ".join(a))
def test_bad_options_are_usage_errors_naming_the_option(argv, message, capsys):
    code, err = run(argv, capsys)
    assert code == USAGE
    assert any(message in line for line in err.splitlines()), err


def test_failed_runs_name_the_path(tmp_path, folder_dataset, capsys):
    cases = [
        (["data", "check", str(tmp_path / "nowhere")], "nowhere: dataset folder not found"),
        (["evaluate", str(tmp_path / "gone.ckpt")], "gone.ckpt: checkpoint not found"),
        (["train", "cub200/magic/base"], "unknown preset 'cub200/magic/base'"),
        (["train", "generated/triplet/base", "trainer.precision=foo"], "trainer.precision='foo'"),
        (
            ["train", "generated/triplet/base", f"data.root={folder_dataset}", "resume=x.ckpt"],
            "x.ckpt: no checkpoint to resume from",
        ),
        (
            ["data", "generate", "/dev/null/x", "--train-classes", "1"],
            "/dev/null: cannot write here",
        ),
        (
            [
                "evaluate",
                "small_cnn",
                "--untrained",
                "--dataset",
                "folder",
                "--root",
                str(folder_dataset),
                "--out",
                "/dev/null/x/result.json",
            ],
            "/dev/null/x: cannot write here",
        ),
        (
            [
                "attention",
                "small_cnn",
                "--untrained",
                "--dataset",
                "folder",
                "--root",
                str(folder_dataset),
                "--out",
                "/dev/null/att",
            ],
            "/dev/null/att: cannot write here",
        ),
        (["report", str(tmp_path)], "no evaluation results (*.eval.json)"),
        (["masks", str(tmp_path / "noimages"), str(tmp_path / "m")], "image folder not found"),
        (
            ["audit", "small_cnn", "--untrained", str(tmp_path / "nophotos")],
            "nophotos: image folder not found",
        ),
        (
            ["export", str(tmp_path / "gone.ckpt"), str(tmp_path / "m.onnx")],
            "gone.ckpt: checkpoint not found",
        ),
        (
            [
                "export",
                "onnx:" + str(tmp_path / "no.onnx: model file not found"),
                str(tmp_path / "m.onnx"),
            ],
            "no.onnx: model file not found",
        ),
        (
            ["index", "small_cnn", "--untrained", str(tmp_path / "nocat"), "--out", "I"],
            "nocat: catalogue not found",
        ),
        (["serve", str(tmp_path / "noindex")], "noindex: index folder not found"),
        (
            ["reproduce", "cub200/magic/*", "--out", str(tmp_path / "r")],
            "no preset matches 'cub200/magic/*'",
        ),
        (
            ["backgrounds", "fetch", "paper", "--from", str(tmp_path / "nocopy")],
            "nocopy: no test/, val/ folder",
        ),
    ]
    for argv, message in cases:
        code, err = run(argv, capsys)
        assert code == FAILED, (argv, err)
        lines = err.strip().splitlines()
        assert lines[-1].startswith("bgbias: error: ") and message in lines[-1], (argv, err)


def test_a_damaged_checkpoint_is_one_line(tmp_path, capsys):
    cut = tmp_path / "best.ckpt"
    cut.write_bytes(b"PK\x03\x04 truncated")
    code, err = run(["evaluate", str(cut)], capsys)
    assert code == FAILED and "best.ckpt: not a readable checkpoint" in err


def test_an_os_error_mid_run_is_one_line(monkeypatch, tmp_path, folder_dataset, capsys):
    import bgbias.evaluation

    def full_disk(path, obj):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(bgbias.evaluation, "write_json", full_disk)
    out = tmp_path / "r.json"
    argv = ["evaluate", "small_cnn", "--untrained", "--dataset", "folder", "--root"]
    code, err = run([*argv, str(folder_dataset), "--repeats", "0", "--out", str(out)], capsys)
    assert code == FAILED
    assert err.strip() == f"bgbias: error: {out}: No space left on device"
