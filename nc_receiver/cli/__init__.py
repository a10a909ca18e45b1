"""Command line: ``flask nc ...`` (in the user's app) and ``nc-receiver ...`` (standalone).

``flask nc`` is registered through the ``flask.commands`` entry point, so every app that
has nc_receiver installed gets it; the commands find the receiver through
``app.extensions``. Sub-groups live in their own modules and attach themselves here.
"""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

nc_group = AppGroup("nc", help="Notificatiecomponent: subscription, inbox and test tools.")


@click.group(help="nc_receiver tools that need no Flask app.")
def main_group() -> None:
    pass


@main_group.command("local-nc", context_settings={"ignore_unknown_options": True,
                                                    "allow_extra_args": True})
@click.pass_context
def local_nc(ctx: click.Context) -> None:
    """Run a local Notificatiecomponent (see ``python -m nc_receiver.localnc --help``)."""
    from ..localnc.__main__ import main as localnc_main

    sys.exit(localnc_main(ctx.args))


def _load_subcommands() -> None:
    # Each module adds its commands to ``nc_group`` / ``main_group`` on import.
    import importlib

    for name in ("subscription", "inbox"):
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise


_load_subcommands()


def main() -> None:
    """Entry point of the ``nc-receiver`` script."""
    main_group()
