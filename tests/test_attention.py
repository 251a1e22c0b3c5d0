"""The attention job: per-model score files keyed by the model, resumable, never stale."""

import json
import os

import numpy as np
import pytest
import torch
from pytorch_metric_learning.distances import CosineSimilarity

from bgbias.adapters import TorchEmbedder
from bgbias.attention import ScoreFile, read_scores, score_dataset, score_models
from bgbias.backbones.small_cnn import RECIPE
from bgbias.data.datasets import FolderDataset
from bgbias.data.transforms import PairedTransform
from bgbias.errors import ConfigError
from bgbias.models import build_model
from bgbias.outputs import claim_output


def checkpoint_like(path: str, seed: int, label: str = "Triplet + BGAugment") -> TorchEmbedder:
    """A small model that presents itself as the bgbias checkpoint at ``path``."""
    torch.manual_seed(seed)
    model = build_model("small_cnn", pretrained=False, embedding_size=8)
    details = {"checkpoint": path, "sha256": f"weights-{seed}"}
    return TorchEmbedder(model, path, "checkpoint", model.recipe, label=label, details=details)


def run(models, folder_dataset, out, **kwargs):
    return score_models(
        models, out, dataset="folder", root=folder_dataset, device="cpu", progress=False, **kwargs
    )


def test_resumes_and_drops_a_partial_line(folder_dataset, tmp_path):
    torch.manual_seed(0)
    model = build_model("small_cnn", pretrained=False, embedding_size=8)
    ds = FolderDataset.open(folder_dataset, "test", PairedTransform(RECIPE, False), True)
    scores = ScoreFile(tmp_path, "m", {"model": "m"})
    first = score_dataset(model, RECIPE, CosineSimilarity(), ds, scores, limit=3, progress=False)
    assert len(first) == 3
    with open(scores.path, "a") as handle:
        handle.write("c5/003.pn")  # a killed run's half line
    full = score_dataset(model, RECIPE, CosineSimilarity(), ds, scores, progress=False)
    assert len(full) == len(ds) == 8
    lines = scores.path.read_text().splitlines()
    assert lines[0] == "image,score" and len(lines) == 9 and len(set(lines)) == 9
    assert read_scores(scores.path) == pytest.approx(full, nan_ok=True)
    assert all(first[k] == pytest.approx(full[k]) for k in first)  # same noise per image


def test_two_runs_of_one_preset_get_their_own_scores(folder_dataset, tmp_path):
    a = checkpoint_like("runs/seed0/checkpoints/best.ckpt", seed=0)
    b = checkpoint_like("runs/seed1/checkpoints/best.ckpt", seed=1)
    summary = run([a, b], folder_dataset, tmp_path / "att")
    assert len(summary) == 2
    files = [s["scores"] for s in summary.values()]
    assert len(set(files)) == 2
    assert read_scores(files[0]) != read_scores(files[1])  # not the first model's scores twice
    table = (tmp_path / "att" / "summary.md").read_text()
    assert table.count("Triplet + BGAugment [") == 2  # one label, told apart by the run


def test_the_same_model_twice_is_refused(folder_dataset, tmp_path):
    a = checkpoint_like("runs/x/checkpoints/best.ckpt", seed=0)
    again = checkpoint_like("runs/x/checkpoints/best.ckpt", seed=0)
    with pytest.raises(ConfigError, match="are the same model"):
        run([a, again], folder_dataset, tmp_path / "att")


def test_scores_of_another_model_or_setting_are_not_reused(folder_dataset, tmp_path):
    out = tmp_path / "att"
    first = run([checkpoint_like("r/checkpoints/best.ckpt", 0)], folder_dataset, out)
    # retrained into the same path: other weights, same file name
    second = run([checkpoint_like("r/checkpoints/best.ckpt", 1)], folder_dataset, out)
    (key,) = second
    assert first[key]["mean"] != second[key]["mean"]
    fresh = run([checkpoint_like("r/checkpoints/best.ckpt", 1)], folder_dataset, tmp_path / "new")
    assert second[key]["mean"] == pytest.approx(fresh[key]["mean"])
    # another seed changes the noise: rescored, not reported as done
    other_seed = run([checkpoint_like("r/checkpoints/best.ckpt", 1)], folder_dataset, out, seed=3)
    assert other_seed[key]["mean"] != second[key]["mean"]
    assert json.loads((out / f"{key}.meta.json").read_text())["seed"] == 3


def test_a_file_without_header_is_rescored_not_appended_to(folder_dataset, tmp_path):
    out = tmp_path / "att"
    model = checkpoint_like("r/checkpoints/best.ckpt", 0)
    (key,) = run([model], folder_dataset, out)
    path = out / f"{key}.csv"
    good = read_scores(path)
    path.write_text("")  # a full disk killed the run before the header reached the file
    run([model], folder_dataset, out)
    lines = path.read_text().splitlines()
    assert lines[0] == "image,score" and len(lines) == 9
    assert read_scores(path) == pytest.approx(good, nan_ok=True)


def test_non_utf8_file_names_and_leftovers(folder_dataset, tmp_path):
    images = folder_dataset / "images" / "c4"
    name = os.fsdecode(b"caf\xe9.png")  # Latin-1 bytes: not UTF-8
    os.rename(images / "000.png", images / name)
    os.rename(folder_dataset / "masks" / "c4" / "000.png", folder_dataset / "masks" / "c4" / name)
    out = claim_output(tmp_path / "att", "attention")  # a killed attention job's folder:
    (out / ".x.csv.abc.tmp").write_text("half")  # what its killed atomic write leaves
    (key,) = run([checkpoint_like("r/checkpoints/best.ckpt", 0)], folder_dataset, out)
    assert not (out / ".x.csv.abc.tmp").exists()
    assert f"c4/{name}" in read_scores(out / f"{key}.csv")


def test_figure_shows_every_model_on_the_same_images(folder_dataset, tmp_path, drawn_figures):
    a = checkpoint_like("a/checkpoints/best.ckpt", 0, "Contrastive")
    b = checkpoint_like("b/checkpoints/best.ckpt", 1, "Contrastive + BGAugment")
    # the figure's two images are the two scored ones (one seed draws both)
    keys = run([a, b], folder_dataset, tmp_path / "att", figures=2, limit=2)
    assert (tmp_path / "att" / "attribution.png").stat().st_size > 0
    figure = drawn_figures["attribution.png"]
    *cells, colour_bar = figure.axes
    grid = [cells[0:3], cells[3:6]]  # two images: the image, then each model's map over it
    assert [ax.get_title() for ax in grid[0]] == ["image", "Contrastive", "Contrastive + BGAugment"]
    assert colour_bar.get_ylabel() == "attribution (SmoothGrad, normalised)"
    for row in grid:
        photo = row[0].get_images()[0].get_array()
        # under each map the image itself (darkened): every column shows the same image
        for ax in row[1:]:
            assert np.allclose(ax.get_images()[0].get_array(), photo * 0.35)
        first, second = (ax.get_images()[1].get_array() for ax in row[1:])
        assert not np.allclose(first, second)  # each model's own map
    # the scores under the maps are the models' scores of these images in their CSVs
    for column, key in enumerate(keys, start=1):
        shown = sorted(float(row[column].get_xlabel().removeprefix("score ")) for row in grid)
        saved = read_scores(tmp_path / "att" / f"{key}.csv").values()
        assert shown == sorted(round(v, 2) for v in saved), key


def test_other_jobs_temporary_folders_are_left_alone(folder_dataset, tmp_path):
    out = claim_output(tmp_path / "att", "attention")  # jobs writing beside its subfolders:
    others = [
        out / ".shop.building" / "plan.json",  # `bgbias index --out att/shop` at work
        out / ".bench.partial-1a2b3c" / "benchmark.json",  # `bgbias data generate att/bench`
        out / ".idx.replaced-4d5e6f" / "manifest.json",
    ]
    for path in others:
        path.parent.mkdir()
        path.write_text("in use")
    run([checkpoint_like("r/checkpoints/best.ckpt", 0)], folder_dataset, out)
    assert all(path.read_text() == "in use" for path in others)


def test_attention_into_a_folder_of_other_files_is_refused(folder_dataset, tmp_path):
    from bgbias.errors import OutputError

    out = tmp_path / "thesis"
    out.mkdir()
    (out / "summary.md").write_text("my summary")
    with pytest.raises(OutputError, match=f"{out}: holds files bgbias did not write"):
        run([checkpoint_like("r/checkpoints/best.ckpt", 0)], folder_dataset, out)
    assert [p.name for p in out.iterdir()] == ["summary.md"]
