"""The ``bgbias`` subcommands, one module per command group. Each module's ``register(
subparsers)`` adds its parser; a command parses, calls one library function and prints, and
its choices come from the registries."""

from . import attention, audit, data, demo, evaluate, lists, masks, models, report, train

COMMANDS = (demo, data, train, evaluate, attention, audit, report, masks, models, lists)
