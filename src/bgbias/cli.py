"""The ``bgbias`` command: parses arguments, runs one subcommand (:mod:`bgbias.commands`), and
turns failures into one line on stderr and an exit code (0 ok, 1 failed, 2 usage, 130 ^C, 141
when the reader of stdout went away, as for a process that SIGPIPE ends).

Starting it imports no torch: the subcommands import their library code when they run."""

from __future__ import annotations

import argparse
import logging
import os
import select
import sys
import traceback
import warnings
from collections.abc import Sequence

from . import __version__
from .commands import COMMANDS
from .commands._common import HelpFormatter, deprecated_notice
from .errors import BgbiasError

EXIT_FAILED, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 1, 130, 141


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bgbias",
        description="Measure and remove background bias in deep metric learning models.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bgbias {__version__}")
    parser.add_argument("-q", "--quiet", action="count", default=0, help="less output")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more output")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(commands)
    return parser


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno < logging.WARNING else f"bgbias: warning: {text}"


def configure_output(verbosity: int) -> None:
    """Logging to stderr: INFO (stage lines) by default, WARNING with -q, DEBUG with -v;
    progress bars off with -q; other libraries' chatter only with -v."""
    from .progress import show_bars
    from .verbosity import show_library_info

    level = logging.INFO if verbosity == 0 else logging.WARNING if verbosity < 0 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter("%(message)s"))
    root = logging.getLogger("bgbias")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    show_bars(False if verbosity < 0 else None)
    show_library_info(verbosity > 0)
    if verbosity <= 0:
        warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            return _main(argv)
        finally:
            # inside the try: a reader that left (`bgbias list presets | head -1`) shows here,
            # not in the interpreter's last flush as "Exception ignored ... BrokenPipeError"
            sys.stdout.flush()
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    # key=value overrides may stand anywhere among the options (`--epochs 3 a=1 --out x b=2`)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        if hasattr(args, "overrides") and all("=" in u and not u.startswith("-") for u in unknown):
            args.overrides = [*args.overrides, *unknown]
        else:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if not hasattr(args, "func"):
        parser.print_help()
        return 0
    verbosity = args.verbose - args.quiet
    configure_output(verbosity)
    if getattr(args, "renamed", None):
        deprecated_notice(*args.renamed)
    try:
        return args.func(args)
    except BgbiasError as exc:
        return _fail(str(exc), verbosity)
    except OSError as exc:  # a full or read-only disk, a path that cannot exist, ...
        if isinstance(exc, BrokenPipeError) and _stdout_gone():
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(f"{where}{exc.strerror or exc}", verbosity)
    except KeyboardInterrupt:
        print("bgbias: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - a bug or a library's surprise: still one line
        text = str(exc).strip().splitlines()
        detail = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
        hint = "" if verbosity > 0 else " (run again with -v for the traceback)"
        return _fail(f"{detail}{hint}", verbosity)


def _stdout_gone() -> bool:
    """Whether the broken pipe is stdout's (its reader went away), not one of a library's."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # not a file descriptor (a test's capture): it cannot break
        return False
    if not hasattr(select, "poll"):  # Windows: no way to ask; stdout is the pipe bgbias writes
        return True
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(event & (select.POLLERR | select.POLLHUP) for _, event in poller.poll(0))


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush has nowhere to fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file (a test's capture): nothing to discard
        pass


def _fail(message: str, verbosity: int = 0) -> int:
    if verbosity > 0:  # -v: the traceback first, the one line last
        traceback.print_exc(file=sys.stderr)
    print(f"bgbias: error: {message}", file=sys.stderr)
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
