"""No tracebacks, ever: every failure a command meets is one ``bgbias: error:`` line naming the
file, option or model, exit 1 (130 on Ctrl-C); ``-v`` keeps the traceback."""

import errno
import json

import pytest

from bgbias.cli import main
from tests.helpers import write_checkpoint

FAILED, INTERRUPTED = 1, 130


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.err


def one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.startswith("bgbias: error: ")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def boom(monkeypatch):
    """`bgbias train` fails deep inside with an exception bgbias never meant to raise."""
    import bgbias.config

    def compose(*args, **kwargs):
        raise RuntimeError("something nobody foresaw")

    monkeypatch.setattr(bgbias.config, "compose", compose)


def test_an_unexpected_exception_is_one_line_and_v_keeps_the_traceback(boom, capsys):
    code, err = run(["train", "generated/triplet/base"], capsys)
    assert code == FAILED
    line = one_error_line(err)
    assert "RuntimeError: something nobody foresaw" in line and "-v" in line
    code, err = run(["train", "generated/triplet/base", "-v"], capsys)
    assert code == FAILED
    assert "Traceback" in err and "something nobody foresaw" in err.strip().splitlines()[-1]


def test_ctrl_c_is_130(monkeypatch, capsys):
    import bgbias.config

    def compose(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(bgbias.config, "compose", compose)
    code, err = run(["train", "generated/triplet/base"], capsys)
    assert code == INTERRUPTED and "Traceback" not in err


def test_ctrl_c_during_training_is_130_not_lightnings_exit_1(monkeypatch, tmp_path, capsys):
    from bgbias.data.generate import BenchmarkConfig, generate_benchmark
    from bgbias.training.module import EmbeddingModule

    root = tmp_path / "g"
    generate_benchmark(root, BenchmarkConfig(image_size=32, train_classes=4, images_per_class=4))

    def training_step(self, batch, batch_idx):
        raise KeyboardInterrupt

    monkeypatch.setattr(EmbeddingModule, "training_step", training_step)
    argv = [
        "train",
        "generated/triplet/base",
        f"data.root={root}",
        f"output_dir={tmp_path / 'run'}",
        "data.check_sizes=false",
        "model.pretrained=false",
        "data.num_workers=0",
        "data.batch_size=8",
        "data.iterations_per_epoch=2",
        "trainer.enable_progress_bar=false",
        "trainer.accelerator=cpu",
    ]
    try:
        code, err = run(argv, capsys)
    finally:  # Lightning ignores SIGINT from the first ^C on; give it back to pytest
        import signal

        signal.signal(signal.SIGINT, signal.default_int_handler)
    assert code == INTERRUPTED, err
    assert "Traceback" not in err


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252"])
def test_a_csv_that_is_not_utf8_names_the_file_and_line(folder_dataset, encoding, capsys):
    index = folder_dataset / "index.csv"
    rows = ["path,label", "c0/000.png,c0", "c0/001.png,caf\u00e9"]
    index.write_bytes("\n".join(rows).encode(encoding) + b"\n")
    code, err = run(["data", "check", str(folder_dataset)], capsys)
    assert code == FAILED
    line = one_error_line(err)
    assert f"{index}:3: not UTF-8 text" in line


def test_a_csv_with_a_byte_order_mark_reads(folder_dataset, capsys):
    (folder_dataset / "index.csv").write_text(
        "path,label\nc0/000.png,c0\nc1/000.png,c1\n", encoding="utf-8-sig"
    )
    from bgbias.data.layout import scan

    assert scan(folder_dataset).images == [("c0/000.png", "c0"), ("c1/000.png", "c1")]


def test_a_catalogue_csv_that_is_not_utf8_or_has_a_bom(tmp_path):
    from bgbias.errors import DataError
    from bgbias.search.catalogue import read_catalogue
    from tests.helpers import write_folder_dataset

    root = write_folder_dataset(tmp_path / "ds", {"c0": 2})
    listing = tmp_path / "items.csv"
    listing.write_text("path,label\nds/images/c0/000.png,c0\n", encoding="utf-8-sig")
    assert [item.label for item in read_catalogue(listing).items] == ["c0"]
    listing.write_bytes(b"path,label\nds/images/c0/000.png,caf\xe9\n")
    with pytest.raises(DataError, match=f"{listing}:2: not UTF-8 text"):
        read_catalogue(listing)
    assert root.is_dir()


def test_a_full_disk_while_saving_a_checkpoint_names_the_checkpoint(monkeypatch, tmp_path):
    import bgbias.training.run_folder as run_folder

    def full(obj, handle):
        handle.write(b"x")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(run_folder.torch, "save", full)
    target = tmp_path / "checkpoints" / "last.ckpt"
    with pytest.raises(OSError, match="No space left") as caught:
        run_folder.AtomicCheckpointIO().save_checkpoint({}, target)
    assert caught.value.filename == str(target)
    assert list(target.parent.iterdir()) == []  # no temporary file left behind


def test_a_full_disk_via_the_cli_names_the_file(monkeypatch, tmp_path, folder_dataset, capsys):
    import bgbias.io

    real = bgbias.io.json.dump

    def full(obj, handle, **kwargs):
        real({"partial": True}, handle)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(bgbias.io.json, "dump", full)
    out = tmp_path / "r.json"
    argv = ["evaluate", "small_cnn", "--untrained", "--dataset", "folder", "--root"]
    code, err = run([*argv, str(folder_dataset), "--repeats", "0", "--out", str(out)], capsys)
    assert code == FAILED
    assert one_error_line(err) == f"bgbias: error: {out}: No space left on device"


def test_evaluate_out_a_folder_names_the_folder(tmp_path, folder_dataset, capsys):
    out = tmp_path / "results"
    out.mkdir()
    argv = ["evaluate", "small_cnn", "--untrained", "--dataset", "folder", "--root"]
    code, err = run([*argv, str(folder_dataset), "--repeats", "0", "--out", str(out)], capsys)
    assert code == FAILED
    line = one_error_line(err)
    assert line.startswith(f"bgbias: error: {out}: ") and ".tmp" not in line


def test_an_embedding_size_of_10_to_the_8_is_a_config_error(capsys):
    code, err = run(["train", "generated/arcface/base", "model.embedding_size=100000000"], capsys)
    assert code == FAILED
    assert "model.embedding_size=100000000 must be <= " in one_error_line(err)


def test_embedding_size_0_trains_on_the_backbone_features(tmp_path):
    """0 means "no head": the loss must be built for the backbone's own feature size."""
    import torch

    from bgbias.config import compose, to_dict
    from bgbias.training.module import EmbeddingModule

    config = compose("generated/arcface/base", ["model.embedding_size=0", "model.pretrained=false"])
    module = EmbeddingModule(to_dict(config), num_classes=3)
    embeddings = module(torch.rand(2, 3, 32, 32))
    loss = module.loss_fn(embeddings, torch.tensor([0, 1]))
    assert embeddings.shape[1] == module.model.embedding_size and torch.isfinite(loss)


def test_a_malformed_config_yaml_names_the_file(tmp_path, capsys):
    bad = tmp_path / "config.yaml"
    bad.write_text("model: [\n")
    code, err = run(["train", "--config", str(bad)], capsys)
    assert code == FAILED
    assert f"{bad}:2: not a readable YAML config" in one_error_line(err)
    bad.write_text("- just\n- a list\n")
    code, err = run(["train", "--config", str(bad)], capsys)
    assert code == FAILED
    assert f"{bad}: a config file maps keys to values" in one_error_line(err)


def test_export_with_an_unknown_opset_names_the_option(tmp_path, capsys):
    checkpoint = write_checkpoint(tmp_path / "m.ckpt")
    code, err = run(["export", str(checkpoint), str(tmp_path / "m.onnx"), "--opset", "99"], capsys)
    assert code == FAILED
    assert "--opset 99" in one_error_line(err)
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize(
    "manifest", ['["a list"]', '{"format": 1, "count": "many"}', "\udcff"], ids=repr
)
def test_a_damaged_index_manifest_is_one_line(built_index_copy, manifest, capsys):
    (built_index_copy / "manifest.json").write_bytes(manifest.encode("utf-8", "surrogateescape"))
    code, err = run(["serve", str(built_index_copy)], capsys)
    assert code == FAILED
    assert f"{built_index_copy}: damaged index" in one_error_line(err)


@pytest.fixture
def built_index_copy(tmp_path):
    from bgbias.search.build import build_index
    from tests.helpers import write_folder_dataset

    catalogue = write_folder_dataset(tmp_path / "cat", {"c0": 2, "c1": 2})
    model = write_checkpoint(tmp_path / "m.ckpt")
    out = tmp_path / "index"
    build_index(str(model), catalogue, out, device="cpu", progress=False)
    return out


@pytest.mark.parametrize("state", ['["a list"]', '"text"', '{"done": 5}', "{bad json"])
def test_a_damaged_reproduce_state_is_one_line_naming_it(tmp_path, state, capsys):
    from bgbias.reproduce.plan import plan_cells

    (cell,) = plan_cells("generated/triplet/base", tmp_path / "r", stages=("train",))
    cell.save()
    (cell.folder / "state.json").write_text(state)
    code, err = run(["reproduce", "--status", str(tmp_path / "r")], capsys)
    assert code == FAILED
    assert f"{cell.folder / 'state.json'}: damaged" in one_error_line(err)


FACTORIES = {
    "raises": "def make():\n    raise ValueError('no weights here')\n",
    "exits": "import sys\ndef make():\n    sys.exit(3)\n",
}


@pytest.mark.parametrize("kind", FACTORIES)
def test_a_python_model_factory_that_fails_names_the_model(tmp_path, kind, capsys):
    code_file = tmp_path / "mymodel.py"
    code_file.write_text(FACTORIES[kind])
    spec = f"python:{code_file}:make"
    argv = ["export", spec, str(tmp_path / "m.onnx")]
    code, err = run(argv, capsys)
    assert code == FAILED
    line = one_error_line(err)
    assert spec in line and "make()" in line


MODEL = {"loss": "arcface", "mode": "base"}
BAD_RESULTS = [
    {"model": MODEL, "clean": 5},
    {"model": MODEL, "clean": {"map_at_r": "high"}},
    {"model": MODEL, "clean": {"map_at_r": 0.5}, "corrupted": []},
    {"model": MODEL, "clean": {"map_at_r": 0.5}, "corrupted": {"map_at_r": {"mean": "x"}}},
    {"model": ["m"], "clean": {"map_at_r": 0.5}},
    {"model": MODEL, "clean": {"map_at_r": 0.5}, "dataset": "cub"},
]


@pytest.mark.parametrize("result", BAD_RESULTS, ids=lambda r: json.dumps(r))
def test_bad_values_in_an_eval_json_name_the_file(tmp_path, result, capsys):
    path = tmp_path / "m.test.eval.json"
    path.write_text(json.dumps(result))
    code, err = run(["report", str(tmp_path), "--out", str(tmp_path / "table")], capsys)
    assert code == FAILED
    assert f"{path}: not a valid evaluation result" in one_error_line(err)


def test_a_valid_eval_json_with_null_metrics_reports(tmp_path, capsys):
    result = {"model": MODEL, "clean": {"map_at_r": None}, "corrupted": None}
    (tmp_path / "m.test.eval.json").write_text(json.dumps(result))
    code, err = run(["report", str(tmp_path)], capsys)
    assert code == 0, err


@pytest.mark.parametrize("std", ["0,0.5,0.5", "0.2,-1,0.2"])
def test_a_zero_or_negative_std_is_a_usage_error(std, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["evaluate", "small_cnn", "--untrained", "--std", std])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "--std: every value must be > 0" in err


def test_metrics_without_a_value_are_null_with_the_reason(tmp_path, capsys):
    from tests.helpers import write_folder_dataset

    splits = {"train": ["c0"], "test": ["c1", "c2"]}
    root = write_folder_dataset(tmp_path / "ds", {"c0": 2, "c1": 1, "c2": 1}, splits=splits)
    out = tmp_path / "r.json"
    argv = ["evaluate", "small_cnn", "--untrained", "--dataset", "folder", "--root", str(root)]
    code, err = run([*argv, "--repeats", "0", "--out", str(out)], capsys)
    assert code == 0, err

    def refuse(constant):
        raise ValueError(f"bare {constant} in {out}")

    result = json.loads(out.read_text(), parse_constant=refuse)
    assert result["clean"]["map_at_r"] is None
    assert "no test class has two images" in result["note"]


def test_write_json_never_writes_a_bare_nan(tmp_path):
    from bgbias.io import write_json

    write_json(tmp_path / "x.json", {"a": float("nan"), "b": [float("inf"), 1.5]})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": None, "b": [None, 1.5]}
