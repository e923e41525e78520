"""The ``kemm`` command. Thin: parses arguments and calls the library layers.

Each command family lives in its own module here and exposes ``register(app)``; errors, logging
and interrupts are handled once, in :mod:`kemm.cli.common`.
"""

from __future__ import annotations

import importlib

import typer

from kemm.cli.common import KemmTyper, configure_logging, handle_termination

app = KemmTyper(
    name="kemm",
    help="Knowledge-enhanced multimodal cancer survival prediction.",
    add_completion=False,
)

# Modules that add commands; each defines register(app: typer.Typer) -> None.
_COMMAND_MODULES = ("run", "config", "knowledge", "extract", "bench")


def _register_all() -> None:
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"kemm.cli.{name}")
        except ModuleNotFoundError as error:
            if error.name == f"kemm.cli.{name}":
                continue
            raise
        module.register(app)


def _print_version(value: bool) -> None:
    if value:
        from kemm import __version__

        typer.echo(f"kemm {__version__}")
        raise typer.Exit()


@app.callback()
def _configure(
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Debug logging; tracebacks with error messages."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version."
    ),
) -> None:
    configure_logging(verbose)
    handle_termination()


_register_all()


def main() -> None:
    app()
