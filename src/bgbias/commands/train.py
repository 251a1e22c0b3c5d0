"""`bgbias train`: one training run from a preset (or a saved config) and overrides."""

from __future__ import annotations

import json

from ._common import add_command


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "train",
        help="train an embedding model (a preset, plus key=value overrides)",
        description="Train with a preset <family>/<loss>/<mode> (`bgbias list presets`): the "
        "paper's cars196, cub200 and sop, the generated benchmark, or folder (fine-tune a "
        "pretrained backbone on your own catalogue: `bgbias train folder/normalized_softmax/"
        "bgaugment data.root=ROOT`). Any config key can be overridden as dotted key=value, e.g. "
        "trainer.max_epochs=5 data.root=/data/cub resume=true; every key with its value: "
        "`bgbias train PRESET --print-config`.",
    )
    parser.add_argument("preset", nargs="?", help="e.g. cub200/arcface/bgaugment")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    parser.add_argument("--config", help="start from a saved config.yaml instead of a preset")
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the composed config (every key, after overrides) as YAML and exit",
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..config import compose, to_yaml
    from ..errors import ConfigError
    from ..training import fit

    if (args.preset is None) == (args.config is None):
        raise ConfigError("name a preset (`bgbias list presets`) or pass --config FILE, not both")
    config = compose(args.preset, args.overrides, base=args.config)
    if args.print_config:
        print(to_yaml(config), end="")
        return 0
    print(json.dumps(fit(config), indent=2))
    return 0
