"""What the commands share: the help formatter, checked option types and common options."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ..devices import check_device_name
from ..errors import ConfigError


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every option's default; keeps descriptions' line breaks."""


def add_command(
    subparsers, name: str, help: str, description: str | None = None, **kwargs
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        name,
        help=help,
        description=description or help,
        formatter_class=HelpFormatter,
        **kwargs,
    )
    parser.add_argument(
        "-q", "--quiet", action="count", default=argparse.SUPPRESS, help="less output"
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more output"
    )
    return parser


def int_at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum`` (and <= ``maximum`` when given)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be <= {maximum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def fraction(text: str) -> float:
    """An argparse type: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {value}")
    return value


def positive_number(text: str) -> float:
    """An argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def device_name(text: str) -> str:
    try:
        return check_device_name(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        type=device_name,
        default="auto",
        help="auto (a CUDA GPU when there is one), cpu, cuda, cuda:N or mps",
    )


def three_numbers(text: str) -> tuple[float, float, float]:
    """An argparse type: three comma-separated numbers, e.g. 0.485,0.456,0.406."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected three numbers like 0.5,0.5,0.5, got {text!r}"
        ) from None
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three numbers (R,G,B), got {len(values)}")
    return values


def three_positive_numbers(text: str) -> tuple[float, float, float]:
    """An argparse type: three numbers > 0 (a std: images are divided by it)."""
    values = three_numbers(text)
    if not all(v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"every value must be > 0, got {text!r}")
    return values


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Options for models named in any adapter form (see `bgbias list models`)."""
    parser.add_argument("--weights", help="a local weight file for the model (offline use)")
    parser.add_argument(
        "--untrained", action="store_true", help="a bare backbone with random weights"
    )
    parser.add_argument(
        "--input-size",
        type=int_at_least(8),
        help="input side in pixels of an onnx/torchscript/python model whose file does not "
        "say (default: the file's, else 224)",
    )
    parser.add_argument(
        "--mean", type=three_numbers, help="its input mean, 0-1 RGB (default: ImageNet's)"
    )
    parser.add_argument(
        "--std", type=three_positive_numbers, help="its input std, 0-1 RGB (default: ImageNet's)"
    )


def adapter_options(args: argparse.Namespace):
    from ..adapters import AdapterOptions

    return AdapterOptions(
        weights=args.weights,
        pretrained=not args.untrained,
        input_size=args.input_size,
        mean=args.mean,
        std=args.std,
    )


def mask_model_names() -> list[str]:
    from ..masks.predictors import PREDICTORS

    return PREDICTORS.names()


def add_fill(parser: argparse.ArgumentParser) -> None:
    """--fill: what test-time background removal fills removed backgrounds with."""
    from ..removal import FILLS

    parser.add_argument(
        "--fill", default="mean", choices=FILLS.names(), help="what removed backgrounds become"
    )
