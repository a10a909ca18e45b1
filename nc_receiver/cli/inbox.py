"""``flask nc inbox``: status, dead letters, retry and purge of the durable inbox.

The commands open the app's inbox (``NC_RECEIVER_INBOX_PATH`` or the instance folder);
they work while servers run on the same file. Worker threads are not started in the
``flask`` command's process, so these commands never run handlers themselves.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import click
from flask import current_app
from flask.cli import with_appcontext

from ..inbox import DeadLetter, Inbox
from . import nc_group

inbox_group = click.Group("inbox", help="The durable inbox: status, dead letters, retry, purge.")
nc_group.add_command(inbox_group)


def _inbox() -> Inbox:
    state = current_app.extensions.get("nc_receiver")
    if state is None:
        raise click.ClickException(
            "nc_receiver is not set up on this app; call 'receiver.init_app(app)' in the "
            "app factory that FLASK_APP points to.")
    inbox: Inbox | None = getattr(state.delivery, "inbox", None)
    if inbox is None:
        raise click.ClickException(
            f"This app uses the {state.settings.delivery!r} delivery mode, which has no inbox "
            "(set NC_RECEIVER_DELIVERY=inbox).")
    return inbox


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")


@inbox_group.command("status")
@with_appcontext
def status() -> None:
    """Task counts per state and the oldest unfinished notification."""
    inbox = _inbox()
    stats = inbox.stats()
    click.echo(f"inbox:    {inbox.path}")
    for state in ("pending", "running", "done", "dead"):
        click.echo(f"{state + ':':<9} {stats[state]}")
    click.echo(f"messages: {stats['messages']}")
    age = stats["oldest_pending_age"]
    oldest = "-" if age is None else f"{_when(stats['oldest_pending_at'])} ({age:.0f} s ago)"
    click.echo(f"oldest pending: {oldest}")


def _describe(dead: DeadLetter, verbose: bool) -> list[str]:
    try:
        data = json.loads(dead.body)
    except ValueError:
        data = {}
    data = data.get("data", data) if isinstance(data, dict) else {}
    what = " ".join(str(data.get(k, "?")) for k in ("kanaal", "resource", "actie"))
    last_line = dead.error.strip().splitlines()[-1] if dead.error.strip() else "?"
    kind = last_line.split(":", 1)[0]
    lines = [f"#{dead.task_id}  {_when(dead.failed_at)}  {what}  {dead.handler}  "
             f"attempts={dead.attempts}  error={kind}"]
    if verbose:
        lines.append(f"    resourceUrl: {data.get('resourceUrl', '?')}")
        lines.append(f"    kenmerken: {json.dumps(data.get('kenmerken', {}))}")
        lines.extend("    " + line for line in dead.error.rstrip().splitlines())
    return lines


@inbox_group.command("dead")
@click.option("--limit", default=100, show_default=True, help="Show at most this many.")
@click.option("--verbose", "-v", is_flag=True,
              help="Also show the URL, the kenmerken (may be sensitive) and the traceback.")
@with_appcontext
def dead(limit: int, verbose: bool) -> None:
    """List dead-lettered tasks, the most recent first."""
    letters = _inbox().dead_letters(limit)
    if not letters:
        click.echo("No dead-lettered notifications.")
    for letter in letters:
        for line in _describe(letter, verbose):
            click.echo(line)


@inbox_group.command("retry")
@click.argument("task_id", type=int, required=False)
@click.option("--all", "retry_all", is_flag=True, help="Retry every dead-lettered task.")
@with_appcontext
def retry(task_id: int | None, retry_all: bool) -> None:
    """Make a dead-lettered task (or all of them) pending again, with fresh attempts."""
    if task_id is None and not retry_all:
        raise click.UsageError("Give a task ID (see 'flask nc inbox dead') or --all.")
    if task_id is not None and retry_all:
        raise click.UsageError("Give a task ID or --all, not both.")
    count = _inbox().retry(None if retry_all else task_id)
    if task_id is not None and count == 0:
        raise click.ClickException(f"No dead-lettered task #{task_id}.")
    click.echo(f"Retrying {count} task{'s' if count != 1 else ''}.")


@inbox_group.command("purge")
@click.option("--older-than", "days", type=click.FloatRange(min=0), required=True,
              help="Delete processed notifications received more than DAYS days ago.")
@click.option("--include-dead", is_flag=True, help="Also delete dead-lettered ones.")
@with_appcontext
def purge(days: float, include_dead: bool) -> None:
    """Delete processed notifications older than DAYS days."""
    started = time.monotonic()
    count = _inbox().purge(days * 86400.0, include_dead=include_dead)
    click.echo(f"Purged {count} notification{'s' if count != 1 else ''} "
               f"in {time.monotonic() - started:.1f} s.")
