"""``bgbias.audit()``: a known answer, the model forms it takes, its result, and what
``save()`` may and may not touch in OUT."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import bgbias
from bgbias.auditing import AuditResult
from bgbias.cli import main
from bgbias.errors import ConfigError, DataError, OutputError
from tests.helpers import register_background_set, write_folder_dataset

CLASS_COLOURS = [(70, 15, 15), (15, 70, 15), (15, 15, 70)]  # dark: below the 0.5 cut
PLAIN = {"input_size": 64, "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0), "crop_pct": 1.0}
OPTIONS = {"repeats": 2, "blend_steps": 3, "batch_size": 8, "progress": False}


def smooth_field(rng, size: int, amplitude: float) -> np.ndarray:
    """(size, size, 3): random 4x4 values, bilinearly upsampled: a low-frequency pattern."""
    coarse = torch.from_numpy(rng.uniform(-amplitude, amplitude, (1, 3, 4, 4)))
    return F.interpolate(coarse, size=(size, size), mode="bilinear").squeeze(0).permute(1, 2, 0)


def write_known_answer_folder(root, per_class: int = 6, size: int = 64, seed: int = 0):
    """ROOT/<class>/<i>.png: a bright rectangle (every channel >= 170) on a dark background
    (every channel <= 100) of its class's colour with an image's own smooth pattern, so the
    background tells both class and image apart; masks in ROOT-masks. Plus a folder of dark
    background photos for mixed_rand."""
    rng = np.random.default_rng(seed)
    masks = root.parent / f"{root.name}-masks"
    for c, colour in enumerate(CLASS_COLOURS):
        for i in range(per_class):
            image = np.asarray(colour) + smooth_field(rng, size, 30.0).numpy()
            image = np.clip(image, 0, 100).astype(np.uint8)
            mask = np.zeros((size, size), np.uint8)
            h, w = rng.integers(14, 28, size=2)
            top, left = rng.integers(4, size - h - 4), rng.integers(4, size - w - 4)
            mask[top : top + h, left : left + w] = 255
            image[mask > 0] = rng.integers(170, 256, size=3)
            for folder, array in ((root, image), (masks, mask)):
                (folder / f"c{c}").mkdir(parents=True, exist_ok=True)
                Image.fromarray(array).save(folder / f"c{c}" / f"{i}.png")
    photos = root.parent / f"{root.name}-backgrounds"
    photos.mkdir()
    for i in range(4):
        field = 50 + smooth_field(rng, 96, 45.0).numpy()
        Image.fromarray(np.clip(field, 0, 100).astype(np.uint8)).save(photos / f"{i}.png")
    return root, masks, photos


class Sees(nn.Module):
    """Embeds only the object (``keep="object"``) or only the background (``"background"``):
    the test's objects are its only pixels brighter than 0.5, so no mask is needed. 8x8 average
    pooling of what is kept: (B, 3, 64, 64) in [0, 1] -> (B, 192)."""

    def __init__(self, keep: str):
        super().__init__()
        self.keep = keep
        self.scale = nn.Parameter(torch.ones(()))  # a parameter, so attention can be scored

    def forward(self, x):
        bright = (x.mean(dim=1, keepdim=True) > 0.5).to(x.dtype)
        kept = x * (bright if self.keep == "object" else 1 - bright)
        return F.adaptive_avg_pool2d(kept, 8).flatten(1) * self.scale


def test_known_answer_background_only_is_high_object_only_is_low(tmp_path):
    root, masks, photos = write_known_answer_folder(tmp_path / "ds")
    result = bgbias.audit(
        {"background-only": Sees("background"), "object-only": Sees("object")},
        root,
        masks=masks,
        backgrounds=photos,
        **PLAIN,
        **OPTIONS,
    )
    bg, obj = result.models["background-only"], result.models["object-only"]
    assert result.conditions == ["original", "only_fg", "mixed_rand", "mixed_same", "only_bg"]
    for condition in ("only_fg", "mixed_rand", "mixed_same"):  # low = reliant
        b, o = bg.conditions[condition], obj.conditions[condition]
        assert b.hit_at_1 < o.hit_at_1 and b.cosine_mean < o.cosine_mean, condition
        assert o.hit_at_1 == 1.0, condition  # the object alone identifies every image
    b, o = bg.conditions["only_bg"], obj.conditions["only_bg"]  # high = reliant
    assert b.hit_at_1 > o.hit_at_1 and b.cosine_mean > o.cosine_mean
    assert b.hit_at_1 >= 0.9 and o.hit_at_1 == 0.0
    assert bg.bg_gap > 0.3 and abs(obj.bg_gap) < 1e-6  # a same-class background helps only bg
    assert result.verdicts["background-only"].level == "High"
    assert result.verdicts["object-only"].level == "Low"
    assert result.chance == pytest.approx(1 / 18)
    assert b.chance == pytest.approx(1 / 18)


def test_result_attributes_dict_save_and_html(tmp_path):
    root = write_folder_dataset(tmp_path / "ds", {"a": 3, "b": 3}, size=(64, 64))
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 5, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
    net.append(nn.Flatten()).train()
    result = bgbias.audit(net, root, attention=2, **PLAIN, **OPTIONS)
    assert isinstance(result, AuditResult) and list(result.models) == ["Sequential"]
    assert net.training  # given back in its own mode
    model = result.models["Sequential"]
    saved_dict = result.to_dict()
    entry = saved_dict["models"]["Sequential"]
    mixed = model.conditions["mixed_rand"]
    assert mixed.hit_at_1 == entry["conditions"]["mixed_rand"]["instance"]["hit_at_1"]
    assert mixed.hit_at_1_std == entry["conditions"]["mixed_rand"]["std"]["instance"]["hit_at_1"]
    assert mixed.map_at_r == entry["conditions"]["mixed_rand"]["symmetric"]["map_at_r"]
    assert mixed.repeats == 2 and mixed.images == 6
    assert model.conditions["original"].hit_at_1 is None
    assert [a for a, _ in model.blend] == [0.0, 0.5, 1.0] and model.blend[0][1] == 1.0
    assert np.isfinite(model.attention_score)
    assert model.attention_score == entry["attention_score"]["mean"]
    assert entry["model"]["form"] == "module" and entry["model"]["class"].endswith("Sequential")
    assert result.verdicts["Sequential"].sentence == entry["verdict"]
    assert result.verdicts["Sequential"].level == entry["verdict_level"]
    out = tmp_path / "out"
    assert not out.exists()  # audit() wrote nothing
    assert result.save(out) == out
    assert json.loads((out / "audit.json").read_text()) == saved_dict
    saved_dict["models"].clear()  # to_dict is a copy
    assert result.to_dict()["models"]
    for name in ("report.md", "report.html", "figures/conditions.png", "figures/blend.png"):
        assert (out / name).stat().st_size > 0, name
    report = (out / "report.md").read_text()
    assert "| condition | metric | chance | Sequential |" in report
    assert f"| mixed_rand | hit@1 | {1 / 6:.3f} |" in report
    page = result._repr_html_()
    assert "mixed_rand hit@1" in page and f"{mixed.hit_at_1:.3f}" in page
    assert result.verdicts["Sequential"].level in page and "<script" not in page
    assert "http" not in page and "Sequential: " in repr(result)


def test_model_forms_names_and_a_callable_without_attention(tmp_path):
    root = write_folder_dataset(tmp_path / "ds", {"a": 3, "b": 3}, size=(64, 64))

    def pooled(x):
        return F.adaptive_avg_pool2d(x, 4).flatten(1)

    result = bgbias.audit(
        [Sees("object"), Sees("object"), (pooled, {"input_size": 32})],
        root,
        attention=1,
        **PLAIN,
        **OPTIONS,
    )
    assert list(result.models) == ["Sees", "Sees-2", "pooled"]
    recipe = result.to_dict()["models"]["pooled"]["model"]["recipe"]
    assert recipe["crop"] == 32 and recipe["resize"] == 32  # its own size, the shared crop_pct
    assert result.to_dict()["models"]["Sees"]["model"]["recipe"]["crop"] == 64
    assert result.models["pooled"].attention_score is None
    assert any(n.startswith("pooled: no attention score (a plain callable") for n in result.notes)
    with pytest.raises(ConfigError, match="mean must be 3 numbers"):
        bgbias.audit(pooled, root, mean="grey")
    with pytest.raises(ConfigError, match="'pooled': std must be 3 numbers"):
        bgbias.audit((pooled, {"std": (0.5, 0.5)}), root)
    with pytest.raises(ConfigError, match="unknown preprocessing key"):
        bgbias.audit((pooled, {"size": 32}), root, **OPTIONS)
    with pytest.raises(ConfigError, match="expected a model name, an nn.Module"):
        bgbias.audit({"x": 3}, root, **OPTIONS)
    with pytest.raises(ConfigError, match="repeats must be an integer >= 1"):
        bgbias.audit(pooled, root, repeats=0)
    net = Sees("object").train()
    with pytest.raises(DataError, match="typo: image folder not found"):
        bgbias.audit(net, tmp_path / "typo")
    assert net.training  # a failed plan leaves the user's module as it was


def test_a_typo_leaves_the_report_and_other_files_in_out_untouched(tmp_path, capsys):
    root = write_folder_dataset(tmp_path / "ds", {"a": 3, "b": 3}, size=(64, 64))
    out = tmp_path / "out"
    args = ["audit", "small_cnn", "--untrained", "--input-size", "64", "--repeats", "1", "-q"]
    assert main([*args, str(root), "--out", str(out)]) == 0
    capsys.readouterr()
    # what the audit did not write: a user's file, other jobs' temporary files and folders
    theirs = [out / "notes.txt", out / ".index.partial-1234" / "x", out / ".thumbs.png.1.tmp"]
    for path in theirs:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("not the audit's")
    (out / ".audit.partial-dead").mkdir()  # an older killed audit's own: cleared under its lock
    report = {n: (out / n).read_bytes() for n in ("audit.json", "report.md", "report.html")}
    assert main([*args, str(tmp_path / "typo"), "--out", str(out)]) == 1
    assert "typo: image folder not found" in capsys.readouterr().err
    assert {n: (out / n).read_bytes() for n in report} == report
    assert main([*args, str(root), "--out", str(out), "--seed", "1"]) == 0
    assert "small_cnn: " in capsys.readouterr().out
    assert json.loads((out / "audit.json").read_text())["provenance"]["seed"] == 1
    assert all(p.read_text() == "not the audit's" for p in theirs)
    assert not (out / ".audit.partial-dead").exists()


def test_a_failure_while_writing_keeps_the_previous_report(tmp_path, monkeypatch):
    from bgbias.auditing import save

    root = write_folder_dataset(tmp_path / "ds", {"a": 3, "b": 3}, size=(64, 64))
    result = bgbias.audit(Sees("object"), root, **PLAIN, **OPTIONS)
    out = result.save(tmp_path / "out")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and ".bgbias" not in p.name}

    def half_written(audit, grids, folder):
        (folder / "report.md").write_text("half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(save, "write_reports", half_written)
    with pytest.raises(OSError, match="No space"):
        result.save(out)
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and ".bgbias" not in p.name}
    assert after == before and not list(out.glob(".bgbias-stage-*"))


def test_save_refuses_a_figures_folder_it_did_not_write(tmp_path):
    root = write_folder_dataset(tmp_path / "ds", {"a": 3, "b": 3}, size=(64, 64))
    out = tmp_path / "out"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "holiday.jpg").write_bytes(b"mine")
    result = bgbias.audit(Sees("object"), root, **PLAIN, **OPTIONS)
    with pytest.raises(OutputError, match=r"out: holds files bgbias did not write \(figures\)"):
        result.save(out)
    assert (out / "figures" / "holiday.jpg").read_bytes() == b"mine"
    assert not (out / "audit.json").exists()
    own = result.save(tmp_path / "own")  # the audit's own folder, then a photo in its figures/
    (own / "figures" / "holiday.jpg").write_bytes(b"mine")
    with pytest.raises(OutputError, match="holiday.jpg"):
        result.save(own)
    assert (own / "figures" / "holiday.jpg").read_bytes() == b"mine"


def test_a_failure_during_the_swap_puts_the_previous_report_back(tmp_path, monkeypatch):
    from bgbias.auditing import save

    root = write_folder_dataset(tmp_path / "ds", {"a": 3, "b": 3}, size=(64, 64))
    result = bgbias.audit(Sees("object"), root, **PLAIN, **OPTIONS)
    out = result.save(tmp_path / "out")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and ".bgbias" not in p.name}
    replace, failed = save.os.replace, []

    def failing(source, target):
        new = Path(source).parent.name.startswith(".bgbias-stage-audit-")
        if new and Path(source).name == "audit.json" and not failed:
            failed.append(source)
            raise OSError(5, "Input/output error")  # the new audit.json: the swap's last move
        replace(source, target)

    monkeypatch.setattr(save.os, "replace", failing)
    with pytest.raises(OutputError, match="could not put the new result in place"):
        result.save(out)
    monkeypatch.setattr(save.os, "replace", replace)
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and ".bgbias" not in p.name}
    assert after == before and not list(out.glob(".bgbias-stage-*"))
    assert failed  # the swap did fail where the test meant it to


def test_a_named_background_set_is_taken_as_a_folder_is(tmp_path, monkeypatch, capsys):
    from bgbias.data.background_sets import fetch_background_set

    register_background_set(tmp_path, monkeypatch, "paper", "a stand-in for the paper's set")
    root = write_folder_dataset(tmp_path / "ds", {"a": 3, "b": 3}, size=(64, 64))
    args = ["audit", "small_cnn", "--untrained", "--input-size", "64", "--repeats", "1", "-q"]
    args += [str(root), "--out", str(tmp_path / "out"), "--backgrounds", "paper"]
    assert main(args) == 1  # not fetched yet: the one line says how
    assert "run `bgbias backgrounds fetch paper`" in capsys.readouterr().err
    fetch_background_set("paper", tmp_path / "copy", progress=False)
    assert main(args) == 0
    backgrounds = json.loads((tmp_path / "out" / "audit.json").read_text())["provenance"][
        "backgrounds"
    ]
    assert backgrounds["count"] == 2  # the installed set's 2 test photos
    assert Path(backgrounds["source"]) == tmp_path / "home" / "backgrounds" / "paper" / "test"
