"""The ``bgbias`` subcommands, one module per command group. Each module's ``register(
subparsers)`` adds its parser; a command parses, calls one library function and prints, and
its choices come from the registries."""

from . import (
    attention,
    data,
    demo,
    evaluate,
    export,
    index,
    lists,
    masks,
    models,
    report,
    serve,
    train,
)

COMMANDS = (
    demo,
    data,
    train,
    evaluate,
    attention,
    report,
    export,
    index,
    serve,
    masks,
    models,
    lists,
)
