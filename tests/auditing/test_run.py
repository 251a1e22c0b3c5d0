"""`bgbias audit` end to end on tiny folders: the audit.json schema, fallbacks, the report."""

import json
import os
import re
import shutil

import pytest
import torch
from matplotlib.colors import to_hex
from torch import nn

from bgbias.adapters import AdapterOptions
from bgbias.auditing import AuditConfig, run_audit
from bgbias.auditing.figures import MARK_COLOURS
from bgbias.cli import main
from bgbias.errors import ModelOutputError
from tests.helpers import bar_heights, write_checkpoint, write_folder_dataset

INSTANCE = {"hit_at_1", "mean_rank", "cosine_mean"}
LABEL = {"map_at_r", "precision_at_1", "r_precision"}
# the frame colours (Okabe-Ito) as report.html's figure caption names them
COLOUR_NAMES = {"#0072B2": "dark blue", "#56B4E9": "light blue", "#E69F00": "orange"}


class Net(nn.Module):
    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 5, stride=2)
        self.scale = scale

    def forward(self, x):
        return self.conv(x).relu().mean(dim=(2, 3)) * self.scale


def torchscript_model(path, nan=False):
    torch.manual_seed(0)
    net = Net(float("nan") if nan else 1.0).eval()
    torch.jit.save(torch.jit.trace(net, torch.randn(1, 3, 64, 64)), str(path))
    return f"torchscript:{path}"


def audit(tmp_path, models, images, **kwargs):
    kwargs.setdefault("out", tmp_path / "out")
    config = AuditConfig(
        models=models,
        images=images,
        repeats=2,
        blend_steps=3,
        batch_size=5,
        options=AdapterOptions(pretrained=False, input_size=64),
        progress=False,
        **kwargs,
    )
    return run_audit(config)


def test_audit_json_schema_with_labels_and_two_models(tmp_path, drawn_figures):
    root = write_folder_dataset(tmp_path / "ds", {"a": 4, "b": 4, "c": 3}, size=(72, 64))
    script = torchscript_model(tmp_path / "net.pt")
    result = audit(tmp_path, ["small_cnn", script], root, attention=2, worst=3)
    saved = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert saved["models"].keys() == {"small_cnn", script}
    for model in saved["models"].values():
        conditions = model["conditions"]
        assert set(conditions) == {"original", "only_fg", "mixed_rand", "mixed_same", "only_bg"}
        assert "instance" not in conditions["original"]  # trivially perfect: left out
        for name, entry in conditions.items():
            if name != "original":
                assert set(entry["instance"]) >= INSTANCE
            assert set(entry["symmetric"]) == LABEL and set(entry["asymmetric"]) == LABEL
            if name in ("mixed_rand", "mixed_same"):
                assert set(entry["std"]["instance"]) >= INSTANCE
                assert set(entry["std"]["symmetric"]) == LABEL and entry["repeats"] == 2
            else:
                assert "std" not in entry
        assert [b["alpha"] for b in model["blend"]] == [0.0, 0.5, 1.0]
        assert model["blend"][0]["instance"]["hit_at_1"] == 1.0
        assert model["blend"][0]["symmetric"] == conditions["original"]["symmetric"]
        assert set(model["blend"][1]["instance"]) >= INSTANCE
        gap = conditions["mixed_same"]["symmetric"]["map_at_r"]
        gap -= conditions["mixed_rand"]["symmetric"]["map_at_r"]
        assert model["bg_gap"] == pytest.approx(gap)
        assert set(model["attention_score"]) >= {"mean", "std"}
        assert isinstance(model["verdict"], str) and "background reliance" in model["verdict"]
        assert len(model["worst"]["mixed_rand"]) == 3
        assert set(model["breakdown"]) == {"by_mask_area", "by_class"}
    assert saved["provenance"]["packages"]["torch"] == torch.__version__
    assert saved["data"]["images"] == 11 and saved["data"]["classes"] == 3
    assert result["models"].keys() == saved["models"].keys()
    out = tmp_path / "out"
    for name in (
        "report.md",
        "report.html",
        "figures/conditions.png",
        "figures/blend.png",
        "figures/retrieval_grid_1.png",
        "figures/retrieval_grid_2.png",
    ):
        assert (out / name).stat().st_size > 0, name
    report = (out / "report.md").read_text()
    assert "## Verdicts" in report and script in json.dumps(saved["models"][script]["model"])
    assert_figures_show(saved, drawn_figures, out)


def assert_figures_show(saved, drawn_figures, out):
    """The audit's figures show the numbers of its audit.json, and report.html's caption names
    the grids' frame colours."""
    models = list(saved["models"].values())
    labels = [model["label"] for model in models]
    varied = [c for c in saved["conditions"] if c != "original"]

    def numbers(family, metric, conditions):
        return [[m["conditions"][c][family][metric] for c in conditions] for m in models]

    # conditions.png: per panel a bar per model and condition, at the audit's value
    bars = drawn_figures["conditions.png"]
    hit, cosine, map_at_r = bars.axes
    assert [t.get_text() for t in hit.get_xticklabels()] == varied
    assert bar_heights(hit) == [pytest.approx(v) for v in numbers("instance", "hit_at_1", varied)]
    assert bar_heights(cosine) == [
        pytest.approx(v) for v in numbers("instance", "cosine_mean", varied)
    ]
    everything = saved["conditions"]
    assert bar_heights(map_at_r) == [
        pytest.approx(v) for v in numbers("symmetric", "map_at_r", everything)
    ]
    chance = [line.get_ydata()[0] for line in hit.get_lines() if line.get_linestyle() == "--"]
    assert chance == [pytest.approx(saved["chance_hit_at_1"])]
    assert [t.get_text() for t in map_at_r.get_legend().get_texts()] == labels

    # blend.png: per model a line through (alpha, value) of its blend
    curves = drawn_figures["blend.png"]
    for ax, (family, metric) in zip(
        curves.axes,
        [("instance", "hit_at_1"), ("instance", "cosine_mean"), ("symmetric", "map_at_r")],
        strict=True,
    ):
        lines = [(list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()]
        expected = [
            ([b["alpha"] for b in m["blend"]], [b[family][metric] for b in m["blend"]])
            for m in models
        ]
        assert lines == [(a, pytest.approx(v)) for a, v in expected], metric
    assert [t.get_text() for t in curves.axes[-1].get_legend().get_texts()] == labels

    # retrieval_grid_N.png: a row per worst query of the audit, each result framed in its mark's
    # colour and captioned with the same mark
    for n, model in enumerate(models, start=1):
        grid = drawn_figures[f"retrieval_grid_{n}.png"]
        assert grid.get_suptitle() == model["label"]
        rows = [ax for ax in grid.axes if ax.get_title(loc="left")]
        expected = [
            f"{condition}: {entry['image']} (cos {entry['cosine']:.2f})"
            for condition in ("mixed_rand", "only_bg")
            for entry in model["worst"][condition][:4]
        ]
        assert [ax.get_title(loc="left") for ax in rows] == expected
        colours = {"its original": MARK_COLOURS["own"], "same class": MARK_COLOURS["class"]}
        colours["wrong"] = MARK_COLOURS["wrong"]
        results = [ax for ax in grid.axes if re.match(r"\d+\. ", ax.get_xlabel())]
        assert len(results) == 5 * len(expected)  # top-5 of every row
        for ax in results:
            mark = ax.get_xlabel().split(". ", 1)[1]
            frame = {to_hex(spine.get_edgecolor()) for spine in ax.spines.values()}
            assert frame == {colours[mark].lower()}, ax.get_xlabel()
            assert ax.get_images()[0].get_array().std() > 0  # a photo, not a blank cell
    html = (out / "report.html").read_text()
    (caption,) = re.findall(r"<img alt='retrieval_grid_1'[^>]*><figcaption>(.*?)<", html)
    for mark, colour in MARK_COLOURS.items():
        assert COLOUR_NAMES[colour] in caption, (mark, caption)
    assert "green" not in caption and "red" not in caption


def test_flat_folder_gives_instance_metrics_only(tmp_path):
    root = write_folder_dataset(tmp_path / "ds", {"x": 6}, size=(64, 64))
    flat = tmp_path / "flat"
    shutil.copytree(root / "images" / "x", flat)
    result = audit(tmp_path, ["small_cnn"], flat, masks=root / "masks" / "x")
    model = result["models"]["small_cnn"]
    assert set(model["conditions"]) == {"original", "only_fg", "mixed_rand", "only_bg"}
    assert model["conditions"]["original"] == {"images": 6}
    for entry in model["conditions"].values():
        assert "symmetric" not in entry and "asymmetric" not in entry
    assert model["bg_gap"] is None and model["attention_score"] is None
    assert "no labels, instance metrics only" in result["notes"][0]


def test_too_few_images_per_class_falls_back_to_instance_metrics_and_says_so(tmp_path):
    root = write_folder_dataset(tmp_path / "ds", {"a": 1, "b": 1, "c": 2}, size=(64, 64))
    result = audit(tmp_path, ["small_cnn"], root)
    assert not result["label_metrics"]
    assert "symmetric" not in result["models"]["small_cnn"]["conditions"]["mixed_rand"]
    note = "too few images per class for label metrics"
    assert note in result["notes"][0]
    assert note in (tmp_path / "out" / "report.md").read_text()
    assert note in (tmp_path / "out" / "report.html").read_text()


def test_a_failed_audit_leaves_the_previous_complete_report(tmp_path):
    root = write_folder_dataset(tmp_path / "ds", {"a": 3, "b": 3}, size=(64, 64))
    audit(tmp_path, ["small_cnn"], root)
    out = tmp_path / "out"
    before = {
        p.relative_to(out): p.read_bytes()
        for p in out.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }
    assert {"audit.json", "report.md", "report.html", "figures/conditions.png"} <= {
        str(p) for p in before
    }
    with pytest.raises(ModelOutputError, match="NaN"):
        audit(tmp_path, [torchscript_model(tmp_path / "nan.pt", nan=True)], root)
    after = {
        p.relative_to(out): p.read_bytes()
        for p in out.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }
    assert after == before  # the old report, whole and unchanged
    assert not list(out.glob(".bgbias-stage-*"))  # nothing half-built left beside it


def test_cli_audit_prints_verdicts_and_list_models_shows_the_forms(tmp_path, capsys):
    root = write_folder_dataset(tmp_path / "ds", {"a": 3, "b": 3}, size=(64, 64))
    code = main(
        [
            "audit",
            "small_cnn",
            str(root),
            "--untrained",
            "--out",
            str(tmp_path / "o"),
            "--repeats",
            "1",
            "--blend-steps",
            "2",
            "-q",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0 and printed.startswith("small_cnn: ") and "background reliance" in printed
    assert main(["list", "model-forms"]) == 0
    listed = capsys.readouterr().out
    for syntax in (
        "onnx:<file.onnx>",
        "torchscript:<file.pt>",
        "timm:<name>",
        "hf:",
        "open_clip:",
        "python:<module>:<factory>",
        "best.ckpt",
    ):
        assert syntax in listed
    assert main(["audit", "nonsense-model", str(root), "--out", str(tmp_path / "o")]) == 1
    assert "matches no model form" in capsys.readouterr().err


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--mean", "0.5,0.5", "three numbers"),
        ("--std", "a,b,c", "three numbers"),
        ("--repeats", "0", "must be >= 1"),
    ],
)
def test_cli_rejects_bad_option_values(tmp_path, capsys, option, value, message):
    with pytest.raises(SystemExit) as info:
        main(["audit", "small_cnn", str(tmp_path), option, value])
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_cli_bad_inputs_are_one_line_errors_naming_them(tmp_path, capsys):
    from PIL import Image

    root = write_folder_dataset(tmp_path / "ds", {"a": 3, "b": 3}, size=(64, 64))
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (8, 8)).save(photo)
    cases = [
        (["small_cnn", str(tmp_path / "none")], "none: image folder not found"),
        (["small_cnn", str(root), "--masks", str(tmp_path / "nm")], "nm: mask folder not found"),
        (["small_cnn", str(root), "--backgrounds", str(tmp_path / "nb")], "background folder"),
        ([f"onnx:{photo}", str(root)], "photo.jpg: not a loadable ONNX model"),
        ([f"torchscript:{photo}", str(root)], "photo.jpg: not a loadable TorchScript file"),
    ]
    for args, message in cases:
        assert main(["audit", *args, "--untrained", "--out", str(tmp_path / "o"), "-q"]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("bgbias: error: ") and message in err and "\n" not in err, err


@pytest.mark.parametrize(
    ("loss", "distance"),
    [("normalized_softmax", "dot"), ("arcface", "cosine"), ("triplet", "euclidean")],
)
def test_audit_json_names_the_distance_the_models_loss_compares_by(tmp_path, loss, distance):
    checkpoint = write_checkpoint(tmp_path / "run" / "best.ckpt", f"generated/{loss}/base")
    root = write_folder_dataset(tmp_path / "ds", {"a": 3, "b": 3}, size=(64, 64))
    out = tmp_path / "out"
    args = [str(checkpoint), str(root), "--out", str(out), "--repeats", "1", "-q"]
    assert main(["audit", *args, "--blend-steps", "2"]) == 0
    (saved,) = json.loads((out / "audit.json").read_text())["models"].values()
    assert saved["distance"] == distance


def _tree(folder):
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _user_folder(folder):
    """A folder of the user's own work that happens to use the audit's output names."""
    (folder / "figures").mkdir(parents=True)
    (folder / "figures" / "conditions.png").write_bytes(b"my own plot")
    (folder / "report.md").write_text("my thesis chapter")
    (folder / "notes.txt").write_text("keep me")
    return _tree(folder)


def test_audit_into_a_folder_of_other_files_is_refused_and_deletes_nothing(tmp_path, capsys):
    root = write_folder_dataset(tmp_path / "ds", {"a": 3, "b": 3}, size=(64, 64))
    out = tmp_path / "project"
    before = _user_folder(out)
    for model in ("nosuchmodel", "small_cnn"):  # a bad model, then a good one
        assert main(["audit", model, str(root), "--untrained", "--out", str(out), "-q"]) == 1
        assert _tree(out) == before
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"bgbias: error: {out}: ") and "\n" not in err, err
    assert "holds files bgbias did not write" in err and "choose an empty or new folder" in err


def test_a_failing_audit_does_not_create_its_out_folder(tmp_path, capsys):
    root = write_folder_dataset(tmp_path / "ds", {"a": 3, "b": 3}, size=(64, 64))
    assert main(["audit", "nosuchmodel", str(root), "--out", str(tmp_path / "new"), "-q"]) == 1
    assert "matches no model form" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_a_full_disk_during_a_rerun_keeps_the_previous_report(tmp_path, monkeypatch):
    import errno

    import bgbias.auditing.save as save

    root = write_folder_dataset(tmp_path / "ds", {"a": 3, "b": 3}, size=(64, 64))
    audit(tmp_path, ["small_cnn"], root)
    out = tmp_path / "out"
    before = _tree(out)
    assert {"audit.json", "report.md", "report.html"} <= {str(p) for p in before}

    def full_disk(audit, grids, folder):
        (folder / "report.md").write_text("half a rep")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(save, "write_reports", full_disk)
    with pytest.raises(OSError):
        audit(tmp_path, ["small_cnn"], root, seed=1)
    assert _tree(out) == before
    assert not [p for p in out.iterdir() if p.name.startswith(".bgbias-stage-")]


def test_an_audit_leaves_other_jobs_temporary_folders_alone(tmp_path):
    root = write_folder_dataset(tmp_path / "ds", {"a": 3, "b": 3}, size=(64, 64))
    audit(tmp_path, ["small_cnn"], root)
    out = tmp_path / "out"
    others = [
        out / ".shop.building" / "plan.json",  # `bgbias index --out OUT/shop` at work
        out / ".bench.partial-1a2b3c" / "benchmark.json",  # `bgbias data generate OUT/bench`
        out / ".idx.replaced-4d5e6f" / "manifest.json",
        out / f".bgbias-stage-audit-{os.getppid()}-0a0b" / "audit.json",  # a live process's
        out / f".bgbias-stage-index-{os.getppid()}-0c0d" / "manifest.json",  # another kind's
    ]
    for path in others:
        path.parent.mkdir()
        path.write_text("in use")
    audit(tmp_path, ["small_cnn"], root, seed=1)
    assert all(path.read_text() == "in use" for path in others)


def test_a_run_or_audit_never_writes_into_an_index_folder(tmp_path):
    from bgbias.errors import OutputError
    from bgbias.search.build import build_index
    from tests.helpers import write_checkpoint

    root = write_folder_dataset(tmp_path / "ds", {"a": 3, "b": 3}, size=(64, 64))
    index = tmp_path / "index"
    model = str(write_checkpoint(tmp_path / "m.ckpt"))
    build_index(model, root, index, device="cpu", progress=False)
    before = _tree(index)
    with pytest.raises(OutputError, match=f"{index}: holds a bgbias index output"):
        audit(tmp_path, ["small_cnn"], root, out=index)
    assert _tree(index) == before
