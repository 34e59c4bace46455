"""A click group whose commands of their own modules are imported only when named (click's documented
"lazily loading subcommands"): `auditor status` never imports `auditor report`'s module, and the
group's --help lists them from their summaries here, importing none of them."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import click


@dataclass(frozen=True)
class LazyCommand:
    """Where a command lives ("module:attribute") and the first paragraph of its help, which the
    group's --help shows (tests/test_startup.py checks it against the command's own)."""

    location: str
    summary: str


class LazyGroup(click.Group):
    """`lazy_commands` maps a command's name to its LazyCommand; `on_load` is applied to each command
    once loaded (the options every command takes)."""

    def __init__(
        self,
        *args: Any,
        lazy_commands: Mapping[str, LazyCommand] | None = None,
        on_load: Callable[[click.Command], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})
        self.on_load = on_load

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_commands and cmd_name not in self.commands:
            self.add_command(self.load(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def load(self, name: str) -> click.Command:
        """The command itself, imported from its module."""
        location = self.lazy_commands[name].location
        module_name, _, attribute = location.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{location} is not a click command")
        if self.on_load is not None:
            self.on_load(command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's own listing, but a command not loaded yet is listed from its summary."""
        listed = [(name, self._listed(ctx, name)) for name in self.list_commands(ctx)]
        shown = [(name, command) for name, command in listed if command is not None and not command.hidden]
        if not shown:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in shown)
        with formatter.section("Commands"):
            formatter.write_dl([(name, command.get_short_help_str(limit)) for name, command in shown])

    def _listed(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy_commands and name not in self.commands:
            return click.Command(name, help=self.lazy_commands[name].summary)
        return super().get_command(ctx, name)
