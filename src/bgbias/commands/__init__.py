"""The ``bgbias`` subcommands, one module per command group. Each module's ``register(
subparsers)`` adds its parser; a command parses, calls one library function and prints, and
its choices come from the registries."""

from . import (
    attention,
    audit,
    backgrounds,
    data,
    demo,
    evaluate,
    export,
    index,
    lists,
    mask_weights,
    masks,
    report,
    reproduce,
    serve,
    train,
)

COMMANDS = (
    demo,
    data,
    backgrounds,
    train,
    evaluate,
    attention,
    audit,
    report,
    reproduce,
    export,
    index,
    serve,
    masks,
    mask_weights,
    lists,
)
