"""The CLI's command table: ``@command("jobs list")`` registers a function under the ``cmd`` its parser sets.

`interp.cli.main` and the command groups (`interp.cli.jobs`) both import this; main dispatches through
``COMMANDS``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from interp.settings import Paths

Command = Callable[[argparse.Namespace, Paths], int]
COMMANDS: dict[str, Command] = {}


def command(name: str) -> Callable[[Command], Command]:
    def register(fn: Command) -> Command:
        COMMANDS[name] = fn
        return fn
    return register
