"""Training throughput: Lightning base vs Lightning BGAugment vs a bare PyTorch loop.

Same preset model, batch, data pipeline, loss, optimiser and precision in all three; the first
steps of each run are excluded (warm-up), validation is off while timing, and the three are
measured in interleaved rounds (medians reported: a shared 2-core machine drifts by 10-15%).

    python bench/train_step.py [--preset generated/multi_similarity] [--steps 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

from bgbias.config import compose, to_dict
from bgbias.data.generate import generate_benchmark
from bgbias.training import EmbeddingModule, MaskedDataModule, RunCSVLogger, resolve_precision

WARMUP = 20


class StepTimer(L.Callback):
    def __init__(self):
        self.start = self.end = None
        self.images = 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == WARMUP:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if self.start is not None:
            self.images += len(batch[2])
            self.end = time.perf_counter()

    @property
    def rate(self) -> float:
        return self.images / (self.end - self.start)


def lightning_rate(config, steps: int, out: Path) -> float:
    datamodule = MaskedDataModule(config)
    datamodule.setup("fit")
    module = EmbeddingModule(to_dict(config), datamodule.train_set.num_classes)
    timer = StepTimer()
    trainer = L.Trainer(
        max_steps=WARMUP + steps,
        accelerator="auto",
        devices=1,
        logger=RunCSVLogger(out),
        callbacks=[timer],
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        log_every_n_steps=10,
    )
    trainer.fit(module, datamodule=datamodule)
    return timer.rate


def bare_rate(config, steps: int) -> float:
    datamodule = MaskedDataModule(config)
    datamodule.setup("fit")
    module = EmbeddingModule(to_dict(config), datamodule.train_set.num_classes)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, loss_fn = module.model.to(device).train(), module.loss_fn.to(device)
    configured = module.configure_optimizers()
    optimizer = configured["optimizer"]
    scheduler = configured.get("lr_scheduler", {}).get("scheduler")
    loader = datamodule.train_dataloader()
    bf16 = resolve_precision(config.trainer.precision, "auto") == "bf16-mixed"
    images, start = 0, None
    for step, (x, _, y) in enumerate(loader):
        if step == WARMUP:
            start = time.perf_counter()
        if step == WARMUP + steps:
            break
        x, y = x.to(device), y.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            embeddings = model(x)
        loss = loss_fn(embeddings.float(), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if start is not None:
            images += len(y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--preset",
        default="generated/multi_similarity",
        help="<dataset>/<loss>; the mode is set per measurement",
    )
    parser.add_argument(
        "--root", help="dataset root (default: a generated benchmark in a temp dir)"
    )
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = args.root or str(tmp / "benchmark")
        if args.root is None:
            generate_benchmark(root)
        common = [f"data.root={root}", "data.iterations_per_epoch=100000", *args.overrides]
        base = compose(f"{args.preset}/base", [*common, f"output_dir={tmp / 'base'}"])
        bga = compose(f"{args.preset}/bgaugment", [*common, f"output_dir={tmp / 'bga'}"])
        precision = resolve_precision(base.trainer.precision, "auto")
        print(
            f"preset {args.preset}; backbone {base.model.backbone}; batch {base.data.batch_size}; "
            f"precision {precision}; {args.rounds} rounds of {args.steps} timed steps after "
            f"{WARMUP}; torch threads {torch.get_num_threads()}"
        )
        measured: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for name, measure in (
                ("bare PyTorch loop (base)", lambda: bare_rate(base, args.steps)),
                ("Lightning, base", lambda: lightning_rate(base, args.steps, tmp / "base")),
                ("Lightning, BGAugment", lambda: lightning_rate(bga, args.steps, tmp / "bga")),
            ):
                measured.setdefault(name, []).append(measure())
        rates = {name: statistics.median(values) for name, values in measured.items()}
    for name, rate in rates.items():
        runs = ", ".join(f"{v:.1f}" for v in measured[name])
        print(f"{name:28s} {rate:8.1f} images/s (median of {runs})")
    overhead = rates["Lightning, base"] / rates["Lightning, BGAugment"] - 1
    lightning = rates["bare PyTorch loop (base)"] / rates["Lightning, base"] - 1
    print(f"BGAugment overhead: {100 * overhead:.1f}%")
    print(f"Lightning vs bare loop: {100 * lightning:.1f}%")


if __name__ == "__main__":
    main()
