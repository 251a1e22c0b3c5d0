"""Training throughput: a bare PyTorch loop vs Lightning, without and with BGAugment.

All four use the same preset model, batch, data pipeline (``MaskedDataModule``'s train
loader), loss, optimiser, scheduler and precision, and do the same per-step work: BGAugment
(``datamodule.augment``, as ``EmbeddingModule`` uses it) when on, the model under autocast, the
loss in float32, a finite-loss check, backward, optimiser and scheduler steps. The first steps
of each run are excluded (warm-up); validation is off while timing; measurements run in
interleaved rounds, medians reported (a shared machine drifts by 10-15%).

Defaults finish in about two minutes on a 2-core CPU. The paper's size for a GPU:

    python bench/train_step.py --device cuda --backbone bninception --crop 227 \\
        --batch-size 32 --precision bf16-mixed --channels-last

Uses bgbias's public ``MaskedDataModule`` and ``EmbeddingModule`` only; their members used:
``datamodule.train_set``, ``datamodule.augment``, ``datamodule.train_dataloader()``,
``module.model``, ``module.loss_fn``, ``module.configure_optimizers()``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import device_sync, pick_device  # noqa: E402

from bgbias.config import compose, to_dict, uses_bgaugment  # noqa: E402
from bgbias.data.generate import generate_benchmark  # noqa: E402
from bgbias.data.transforms import RECIPES  # noqa: E402
from bgbias.training import EmbeddingModule, MaskedDataModule  # noqa: E402

WARMUP = 10


class StepTimer(L.Callback):
    def __init__(self, device):
        self.sync = device_sync(device)
        self.start = self.end = None
        self.images = 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == WARMUP:
            self.sync()
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if self.start is not None:
            self.sync()
            self.images += len(batch[2])
            self.end = time.perf_counter()

    @property
    def rate(self) -> float:
        return self.images / (self.end - self.start)


def build(config, channels_last: bool):
    datamodule = MaskedDataModule(config)
    datamodule.setup("fit")
    module = EmbeddingModule(to_dict(config), datamodule.train_set.num_classes)
    if channels_last:  # convolutions follow the weights' layout
        module.model.to(memory_format=torch.channels_last)
    return datamodule, module


def lightning_rate(config, steps: int, device, channels_last: bool) -> float:
    datamodule, module = build(config, channels_last)
    timer = StepTimer(device)
    trainer = L.Trainer(
        max_steps=WARMUP + steps,
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        precision=config.trainer.precision,
        logger=False,
        callbacks=[timer],
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
    )
    trainer.fit(module, datamodule=datamodule)
    return timer.rate


def bare_rate(config, steps: int, device, channels_last: bool) -> float:
    """EmbeddingModule.training_step's work in a plain loop."""
    datamodule, module = build(config, channels_last)
    model, loss_fn = module.model.to(device).train(), module.loss_fn.to(device)
    configured = module.configure_optimizers()
    optimizer = configured["optimizer"]
    scheduler = configured.get("lr_scheduler", {}).get("scheduler")
    augment = datamodule.augment if uses_bgaugment(config) else None
    state = np.random.SeedSequence([config.seed, 0, 0, 1])  # the module's per-epoch generator
    generator = torch.Generator().manual_seed(int(state.generate_state(1)[0]))
    bf16 = config.trainer.precision == "bf16-mixed"
    sync = device_sync(device)
    images_seen, start = 0, None
    for step, (images, masks, labels) in enumerate(datamodule.train_dataloader()):
        if step == WARMUP:
            sync()
            start = time.perf_counter()
        if step == WARMUP + steps:
            break
        images, masks = images.to(device, non_blocking=True), masks.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            if augment is not None:
                images = augment(images, masks, generator)
            embeddings = model(images)
            with torch.autocast(device.type, enabled=False):
                loss = loss_fn(embeddings.float(), labels)
        if not torch.isfinite(loss):
            raise RuntimeError(f"loss became {loss.item()} at step {step}")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if start is not None:
            images_seen += len(labels)
    sync()
    return images_seen / (time.perf_counter() - start)


def recipe_for_crop(crop: int) -> str:
    names = [name for name in RECIPES.names() if RECIPES.get(name).crop == crop]
    if not names:
        crops = sorted({RECIPES.get(n).crop for n in RECIPES.names()})
        raise SystemExit(f"--crop {crop}: no transform recipe crops that size (have {crops})")
    return names[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--preset",
        default="generated/multi_similarity",
        help="<dataset>/<loss>; the mode (base, bgaugment) is set per measurement",
    )
    parser.add_argument("--root", help="dataset root (default: a generated benchmark)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--backbone", help="e.g. bninception (untrained: no download)")
    parser.add_argument("--crop", type=int, help="input size, e.g. 227 (BN-Inception's recipe)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--precision", choices=["32-true", "bf16-mixed"], default="32-true")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("overrides", nargs="*", help="config overrides, key=value")
    args = parser.parse_args()
    device = pick_device(args.device)
    options = [f"trainer.precision={args.precision}"]
    if args.backbone:
        options += [f"model.backbone={args.backbone}", "model.pretrained=false"]
    if args.crop:
        options.append(f"data.recipe={recipe_for_crop(args.crop)}")
    if args.batch_size:
        options.append(f"data.batch_size={args.batch_size}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = args.root or str(tmp / "benchmark")
        if args.root is None:
            generate_benchmark(root)
        # one epoch covers the run (a longer one makes the sampler draw millions of indices
        # before the first batch)
        common = [
            f"data.root={root}",
            f"data.iterations_per_epoch={WARMUP + args.steps + 1}",
            *options,
            *args.overrides,
        ]
        configs = {
            mode: compose(f"{args.preset}/{mode}", [*common, f"output_dir={tmp / mode}"])
            for mode in ("base", "bgaugment")
        }
        base = configs["base"]
        print(
            f"preset {args.preset}; backbone {base.model.backbone}; batch {base.data.batch_size}; "
            f"recipe {base.data.recipe or 'the backbone'}'s; precision {args.precision}; "
            f"channels-last {args.channels_last}; device {device}; {args.rounds} rounds of "
            f"{args.steps} timed steps after {WARMUP}; torch threads {torch.get_num_threads()}; "
            "a shared machine"
        )
        runs = {
            "bare loop, base": lambda: bare_rate(base, args.steps, device, args.channels_last),
            "Lightning, base": lambda: lightning_rate(base, args.steps, device, args.channels_last),
            "bare loop, BGAugment": lambda: bare_rate(
                configs["bgaugment"], args.steps, device, args.channels_last
            ),
            "Lightning, BGAugment": lambda: lightning_rate(
                configs["bgaugment"], args.steps, device, args.channels_last
            ),
        }
        measured: dict[str, list[float]] = {name: [] for name in runs}
        started = time.perf_counter()
        for _ in range(args.rounds):
            for name, run in runs.items():
                measured[name].append(run())
    rates = {name: statistics.median(values) for name, values in measured.items()}
    for name, rate in rates.items():
        values = ", ".join(f"{v:.1f}" for v in measured[name])
        print(f"{name:22s} {rate:8.1f} images/s (median of {values})")
    print(f"measured in {time.perf_counter() - started:.0f} s")
    base_ratio = rates["Lightning, base"] / rates["bare loop, base"]
    print(f"ratio: Lightning / bare loop, base {base_ratio:.2f}")
    print(
        "ratio: Lightning / bare loop, BGAugment "
        f"{rates['Lightning, BGAugment'] / rates['bare loop, BGAugment']:.2f}"
    )
    print(
        "ratio: BGAugment / base (Lightning) "
        f"{rates['Lightning, BGAugment'] / rates['Lightning, base']:.2f}"
    )


if __name__ == "__main__":
    main()
