"""The ``kemm`` command. Thin: parses arguments and calls the library layers.

Each command family lives in its own module here and exposes ``register(app)``.
"""

from __future__ import annotations

import importlib
import logging

import typer

app = typer.Typer(
    name="kemm",
    help="Knowledge-enhanced multimodal cancer survival prediction.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Modules that add commands; each defines register(app: typer.Typer) -> None.
_COMMAND_MODULES = ("run", "knowledge", "extract", "bench")


def _register_all() -> None:
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"kemm.cli.{name}")
        except ModuleNotFoundError as error:
            if error.name == f"kemm.cli.{name}":
                continue
            raise
        module.register(app)


@app.callback()
def _configure(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(show_path=False, show_time=False)],
    )


_register_all()


def main() -> None:
    app()
