"""What the commands share: the help formatter, checked option types and common options.

Building the parser imports nothing heavy (no torch, numpy, Lightning): option values that are
a registry's names are checked by :class:`RegistryChoice` when a value is given, since filling
a registry imports its entries."""

from __future__ import annotations

import argparse
import importlib
import logging
import textwrap
from collections.abc import Callable, Iterable

from ..devices import check_device_name
from ..errors import ConfigError

EMPTY_DEFAULTS = (None, "", [], ())


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows an option's default once; keeps descriptions' line breaks.

    No "(default: ...)" is added where the help already says its default in words, nor for an
    empty default (None, "", []) or a flag's, which say nothing a user could type."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        flag = action.nargs == 0  # store_true/store_false/count: the default is "not given"
        if flag or action.default in EMPTY_DEFAULTS or "default" in text:
            return text
        return super()._get_help_string(action)

    def _split_lines(self, text: str, width: int) -> list[str]:
        # as argparse's, but `bgbias list mask-models` is never broken at its hyphen
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def registry_names(path: str) -> Callable[[], list[str]]:
    """The names of the registry at ``path`` (``package.module.NAME``), imported when called."""

    def names() -> list[str]:
        module, name = path.rsplit(".", 1)
        return getattr(importlib.import_module(module), name).names()

    return names


class RegistryChoice(argparse.Action):
    """An option (or argument) whose valid values are ``names()``: checked when a value is
    given, not when the parser is built, so ``--help`` never fills a registry (and imports
    torch). ``listed_by``: the command that lists the names, added to the help."""

    def __init__(
        self,
        option_strings: list[str],
        dest: str,
        names: Callable[[], Iterable[str]],
        listed_by: str | None = None,
        help: str | None = None,
        **kwargs,
    ):
        if listed_by:
            help = f"{help}; see `{listed_by}`"
        super().__init__(option_strings, dest, help=help, **kwargs)
        self.names = names

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        given = values if isinstance(values, list) else [values]
        valid = list(self.names())
        for value in given:
            if value is not None and value not in valid:
                raise argparse.ArgumentError(
                    self, f"invalid choice: {value!r} (choose from {', '.join(valid)})"
                )
        setattr(namespace, self.dest, values)


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


def deprecated_notice(old: str, new: str) -> None:
    """The one line a renamed spelling prints (on stderr) while it still works."""
    logging.getLogger("bgbias").warning(
        "`bgbias %s` is now `bgbias %s`; the old name will be removed in the next release",
        old,
        new,
    )


def add_deprecated_command(subparsers, old: str, new: str) -> argparse.ArgumentParser:
    """A hidden parser for command ``old``, renamed ``new``: it works as ``new`` does after a
    one-line notice, so a user's scripts keep running and say what to change."""
    parser = subparsers.add_parser(  # no help=: not listed in `bgbias --help`
        old, description=f"deprecated: use `bgbias {new}`", formatter_class=HelpFormatter
    )
    parser.set_defaults(renamed=(old, new))
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


def non_negative_number(text: str) -> float:
    """An argparse type: a number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
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
    """Options for models named in any adapter form (see `bgbias list model-forms`)."""
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


MASK_MODELS = registry_names("bgbias.masks.predictors.PREDICTORS")


def add_fill(parser: argparse.ArgumentParser) -> None:
    """--fill: what test-time background removal fills removed backgrounds with."""
    parser.add_argument(
        "--fill",
        default="mean",
        action=RegistryChoice,
        names=registry_names("bgbias.removal.FILLS"),
        listed_by="bgbias list fills",
        help="what removed backgrounds become",
    )
