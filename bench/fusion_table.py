"""Retrain or fix at search time? Clean and replaced-background MAP@R of a base and a BGAugment
model, each plain, with test-time background removal (query masking), and with fused dual
vectors, from one embedding pass per model.

    python bench/fusion_table.py DEMO [--repeats 2] [--mask-model u2netp]

DEMO: the folder `bgbias demo --out DEMO` wrote (runs/base, runs/bgaugment, benchmark/). Each
test image, clean and with its background replaced (the seeded draws `bgbias evaluate` makes,
repeat r from seed r), is embedded as it is and with its background removed by the mask model
(:class:`bgbias.search.fused_eval.FusedEmbedder`); every rule then ranks from those vectors:
``full`` is the plain model, ``foreground`` is `bgbias evaluate --query-masking` (every image
masked), ``rrf`` and ``weighted:0.5`` are `bgbias evaluate --fusion`. The mask model dominates
the cost, so one pass per model serves every row.
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path

import numpy as np

print = partial(print, flush=True)  # noqa: A001 - progress of a long run, also when piped

from bgbias.adapters import load_embedder  # noqa: E402
from bgbias.augment import BackgroundReplacer  # noqa: E402
from bgbias.data.backgrounds import load_banks  # noqa: E402
from bgbias.data.registry import open_split  # noqa: E402
from bgbias.data.transforms import PairedTransform  # noqa: E402
from bgbias.evaluation import embed  # noqa: E402
from bgbias.removal import load_remover  # noqa: E402
from bgbias.search.fused_eval import FusedEmbedder, fused_retrieval_metrics  # noqa: E402
from bgbias.search.fusion import parse_fusion  # noqa: E402

ROWS = [  # (row label, model, rule)
    ("base model", "base", "full"),
    ("base + query masking", "base", "foreground"),
    ("base + fused dual vectors (rrf)", "base", "rrf"),
    ("base + fused dual vectors (weighted:0.5)", "base", "weighted:0.5"),
    ("BGAugment model", "bgaugment", "full"),
    ("BGAugment + query masking", "bgaugment", "foreground"),
    ("BGAugment + fused dual vectors (rrf)", "bgaugment", "rrf"),
    ("BGAugment + fused dual vectors (weighted:0.5)", "bgaugment", "weighted:0.5"),
]


def vectors(checkpoint: Path, repeats: int, mask_model: str):
    embedder = load_embedder(str(checkpoint))
    config = embedder.config
    recipe = embedder.recipe
    test = open_split(
        config.data.dataset,
        config.data.root,
        "test",
        PairedTransform(recipe, train=False),
        require_masks=True,
        check_sizes=config.data.check_sizes,
    )
    bank = load_banks(
        config.backgrounds.source,
        recipe.resize,
        splits=("test",),
        seed=config.backgrounds.seed,
        count=config.backgrounds.count,
    )["test"]
    fused = FusedEmbedder(embedder, load_remover(mask_model), parse_fusion("rrf"))
    started = time.perf_counter()
    result = embed(fused, test, BackgroundReplacer(bank, recipe), repeats, seed=0)
    return result, fused.cost(), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("demo", type=Path)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--mask-model", default="u2netp")
    parser.add_argument("--out", type=Path, help="the table as JSON")
    args = parser.parse_args()
    embedded = {}
    for model in ("base", "bgaugment"):
        checkpoint = args.demo / "runs" / model / "checkpoints" / "best.ckpt"
        embedded[model], cost, seconds = vectors(checkpoint, args.repeats, args.mask_model)
        print(f"{model}: embedded in {seconds:.0f} s; {json.dumps(cost['ms_per_image'])}")
    table = []
    for label, model, rule in ROWS:
        result = embedded[model]
        score = partial(fused_retrieval_metrics, labels=result.labels, fusion=parse_fusion(rule))
        clean = score(result.clean)["map_at_r"]
        corrupted = [score(e)["map_at_r"] for e in result.corrupted]
        table.append(
            {
                "row": label,
                "clean": round(100 * clean, 2),
                "replaced": round(100 * float(np.mean(corrupted)), 2),
                "replaced_std": round(100 * float(np.std(corrupted, ddof=1)), 2)
                if len(corrupted) > 1
                else 0.0,
                "replaced_values": [round(100 * v, 2) for v in corrupted],
            }
        )
    print(f"\nMAP@R x 100, {args.repeats} replaced-background draws, mask model {args.mask_model}")
    print("\n| | clean | replaced background |\n|---|---|---|")
    for row in table:
        replaced = f"{row['replaced']:.2f} ± {row['replaced_std']:.2f}"
        print(f"| {row['row']} | {row['clean']:.2f} | {replaced} |")
    if args.out:
        args.out.write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
