import json

import pytest
import torch

from bgbias.cli import main
from bgbias.data.backgrounds import load_banks
from bgbias.data.datasets import FolderDataset
from bgbias.data.transforms import RECIPES, PairedTransform
from bgbias.evaluation import embed, evaluate
from bgbias.metrics import retrieval_metrics
from bgbias.models import build_model


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_model("small_cnn", pretrained=False, embedding_size=8)


@pytest.fixture
def test_set(folder_dataset):
    return FolderDataset.open(
        folder_dataset, "test", PairedTransform(RECIPES.get("generated"), False), require_masks=True
    )


def test_clean_embedding_matches_a_plain_forward(model, test_set):
    result = embed(model, test_set, progress=False)
    with torch.no_grad():
        direct = model.eval()(torch.stack([test_set[i][0] for i in range(len(test_set))]))
    assert torch.allclose(result.clean, direct, atol=1e-5)
    assert result.labels.tolist() == list(test_set.labels) and result.corrupted == []


def test_evaluate_reports_clean_and_every_repeat(model, test_set):
    bank = load_banks(None, 64, splits=("test",), count=5)["test"]
    out = evaluate(model, test_set, bank, repeats=3, seed=11, batch_size=3, progress=False)
    assert out["repeats"] == 3 and out["seed"] == 11 and out["images"] == 8
    values = out["corrupted"]["map_at_r"]["values"]
    assert len(values) == 3 and out["corrupted"]["map_at_r"]["mean"] == pytest.approx(
        sum(values) / 3
    )
    assert out["clean"] == retrieval_metrics(
        embed(model, test_set, progress=False).clean, test_set.labels
    )
    again = evaluate(model, test_set, bank, repeats=3, seed=11, batch_size=8, progress=False)
    assert again["corrupted"] == out["corrupted"]  # seeded draws, independent of batching
    assert out["backgrounds"]["count"] == 5


def test_repeats_need_masks(model, folder_dataset):
    import shutil

    shutil.rmtree(folder_dataset / "masks")
    ds = FolderDataset.open(
        folder_dataset, "test", PairedTransform(RECIPES.get("generated"), False)
    )
    bank = load_banks(None, 64, splits=("test",), count=3)["test"]
    from bgbias.errors import DataError

    with pytest.raises(DataError, match="needs masks"):
        evaluate(model, ds, bank, repeats=2, progress=False)


def test_evaluate_a_bare_backbone_from_the_cli(folder_dataset, tmp_path, capsys):
    out = tmp_path / "bare.json"
    assert (
        main(
            [
                "evaluate",
                "small_cnn",
                "--untrained",
                "--dataset",
                "folder",
                "--root",
                str(folder_dataset),
                "--repeats",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert result["model"]["label"] == "small_cnn (random weights, no DML training)"
    assert result["dataset"] == {"name": "folder", "root": str(folder_dataset), "split": "test"}
    assert len(result["corrupted"]["precision_at_1"]["values"]) == 2
    assert result["distance"] == "cosine"  # how it ranked, in the one Distance vocabulary
    assert "clean:     MAP@R" in capsys.readouterr().out


def test_bare_backbone_needs_dataset_and_out(folder_dataset, capsys):
    assert main(["evaluate", "small_cnn", "--untrained"]) == 1
    assert "not a bgbias checkpoint; pass --dataset, --root, --out" in capsys.readouterr().err


def test_missing_background_folder(folder_dataset, tmp_path, capsys):
    (tmp_path / "bgs" / "test").mkdir(parents=True)
    assert (
        main(
            [
                "evaluate",
                "small_cnn",
                "--untrained",
                "--dataset",
                "folder",
                "--root",
                str(folder_dataset),
                "--backgrounds",
                str(tmp_path / "bgs"),
                "--out",
                str(tmp_path / "x.json"),
            ]
        )
        == 1
    )
    assert "background folder has no images" in capsys.readouterr().err


def test_a_bad_input_makes_no_output_folder(tmp_path, capsys):
    out = tmp_path / "results" / "small.json"
    args = ["evaluate", "small_cnn", "--untrained", "--dataset", "folder", "--out", str(out)]
    assert main([*args, "--root", str(tmp_path / "nodata")]) == 1
    assert "nodata" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()
    (tmp_path / "results.json").mkdir()
    assert main([*args[:-1], str(tmp_path / "results.json"), "--root", str(tmp_path)]) == 1
    assert "results.json: is a folder; evaluate writes a file there" in capsys.readouterr().err
