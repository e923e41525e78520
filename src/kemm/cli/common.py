"""What every ``kemm`` command shares: one console, one logging setup, one way to fail.

Every command is registered through :class:`KemmTyper`, whose commands end in a result or a
one-line message on stderr, never a traceback (``kemm -v`` shows one):

- bad input or configuration (:class:`~kemm.errors.KemmError`): ``error: ...``, exit 2;
- Ctrl-C or SIGTERM: ``interrupted; rerun the same command to resume``, exit 130;
- anything else (a bug): ``error: unexpected ...``, exit 1.
"""

from __future__ import annotations

import functools
import inspect
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from kemm.errors import InputDataError, KemmError

console = Console(stderr=True)
"""Messages, progress and errors (stderr); results go to stdout."""

INTERRUPTED = "interrupted; rerun the same command to resume"
EXIT_INPUT = 2
EXIT_INTERRUPTED = 130

F = TypeVar("F", bound=Callable[..., Any])


def fail(error: Exception | str) -> NoReturn:
    """Print ``error: ...`` (with the traceback under ``-v``) and exit 2."""
    if isinstance(error, BaseException) and verbose_requested():
        console.print_exception()
    console.print(f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=EXIT_INPUT)


def verbose_requested() -> bool:
    """Whether ``kemm -v`` was given (it puts kemm's logger at DEBUG)."""
    return logging.getLogger("kemm").isEnabledFor(logging.DEBUG)


# Exceptions the command line itself turns into messages and exit codes (usage errors, exits).
# Typer >= 0.29 vendors click, so its exception classes are found through typer's own.
_CLI_EXCEPTIONS = (
    typer.Exit,
    typer.Abort,
    next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"),
)


def _unexpected(error: Exception) -> NoReturn:
    if verbose_requested():
        console.print_exception()
    hint = "" if verbose_requested() else " (rerun with kemm -v for the traceback)"
    console.print(
        f"[red]error:[/red] unexpected {type(error).__name__}: {escape(str(error))}{hint}",
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(code=1) from None


def guarded(func: F) -> F:
    """Wrap a command so that it ends in a result or a one-line message (see module doc)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except _CLI_EXCEPTIONS:
            raise
        except KemmError as error:
            fail(error)
        except KeyboardInterrupt:
            console.print(f"[yellow]{INTERRUPTED}[/yellow]", highlight=False, soft_wrap=True)
            raise typer.Exit(code=EXIT_INTERRUPTED) from None
        except OSError as error:
            # a file or folder the command reads or writes: read-only, full, a file where a
            # folder belongs ... one line naming it
            if error.filename is None:
                _unexpected(error)
            fail(InputDataError(error.strerror or type(error).__name__, file=str(error.filename)))
        except Exception as error:  # noqa: BLE001 - a bug: one line, the traceback under -v
            _unexpected(error)

    return wrapper  # type: ignore[return-value]


def option_group(
    options: dict[str, tuple[Any, Any]], build: Callable[..., Any], name: str
) -> Callable[[F], F]:
    """Give a command a group of options (``{parameter: (type, typer.Option)}``), passed to it
    as the one argument ``name`` = ``build(**values)``: options shared by several commands are
    written once."""

    def decorate(func: F) -> F:
        signature = inspect.signature(func)
        own = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for p in signature.parameters.values()
            if p.name != name
        ]
        added = [
            inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)
            for key, (kind, option) in options.items()
        ]

        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> Any:
            group = build(**{key: kwargs.pop(key) for key in options})
            return func(**kwargs, **{name: group})

        own_hints = {k: v for k, v in func.__annotations__.items() if k != name}
        wrapper.__annotations__ = own_hints | {key: kind for key, (kind, _) in options.items()}
        wrapper.__signature__ = signature.replace(parameters=own + added)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def _flags_take_no_value() -> None:
    """Help pages list ``--allow-missing / --no-allow-missing`` without a ``<bool>`` type, as a
    flag takes no value (typer shows the annotation's type for every option)."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "_kemm_flags", False):
        return

    def display_type_rich(self, ctx):
        return None if self.is_flag else shown(self, ctx)

    display_type_rich._kemm_flags = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_take_no_value()


class KemmTyper(typer.Typer):
    """A :class:`typer.Typer` whose commands are :func:`guarded`."""

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("pretty_exceptions_enable", False)
        kwargs.setdefault("no_args_is_help", True)
        super().__init__(**kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        register = super().command(*args, **kwargs)

        def decorator(func: F) -> F:
            register(guarded(func))
            return func

        return decorator


# Third-party loggers that print INFO lines on import or per request.
QUIET_LOGGERS = ("numexpr", "httpx", "httpcore", "urllib3", "filelock", "h5py", "PIL",
                 "matplotlib", "sentence_transformers", "transformers", "ray", "openai")  # fmt: skip


def configure_logging(verbose: bool = False) -> None:
    """kemm's own messages at INFO (DEBUG under ``-v``) on stderr; other libraries' only from
    WARNING up."""
    from rich.logging import RichHandler

    root = logging.getLogger()
    if not any(getattr(h, "_kemm", False) for h in root.handlers):
        handler = RichHandler(console=console, show_path=False, show_time=False, markup=False)
        handler._kemm = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("kemm").setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def handle_termination() -> None:
    """SIGTERM ends a command like Ctrl-C: finished work is kept, the message says how to
    resume."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
