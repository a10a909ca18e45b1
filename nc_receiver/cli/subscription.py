"""``flask nc subscribe | unsubscribe | status | check | publish``."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
import requests
from flask import current_app

from ..exceptions import NCReceiverError
from ..extension import NotificationReceiver
from ..nc_client import NCClient
from ..startup import PROBE_BODY, auth_for, build_subscription, subscribe
from ..subscription import Subscription
from . import nc_group

CALLBACK_URL = "NC_RECEIVER_CALLBACK_URL"


def _subscription() -> Subscription:
    state = NotificationReceiver.state(current_app)
    try:
        return build_subscription(current_app, state)
    except NCReceiverError as exc:
        raise click.ClickException(str(exc)) from exc


@nc_group.command("subscribe")
def subscribe_command() -> None:
    """Create or update our abonnement at the NC (idempotent; deletes duplicates)."""
    try:
        result = subscribe(current_app, NotificationReceiver.state(current_app), _subscription())
    except NCReceiverError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(str(result))


@nc_group.command("unsubscribe")
def unsubscribe_command() -> None:
    """Delete every abonnement at the NC that points at our callback."""
    try:
        count = _subscription().unsubscribe()
    except NCReceiverError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"deleted {count} abonnement(en) for {current_app.config[CALLBACK_URL]}")


def _kanalen(kanalen: list[dict[str, Any]]) -> str:
    return ", ".join(f"{k['naam']} {k.get('filters') or {}}" for k in kanalen) or "(none)"


@nc_group.command("status")
def status_command() -> None:
    """Our abonnementen at the NC, what the handlers want, and the difference."""
    subscription = _subscription()
    try:
        ours = subscription.ours()
    except NCReceiverError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"callback:  {subscription.callback_url}")
    click.echo(f"wanted:    {_kanalen(subscription.kanalen)}")
    click.echo(f"at the NC: {len(ours)} abonnement(en) with our callback URL")
    for i, abonnement in enumerate(ours):
        click.echo(f"  {abonnement['url']}: {_kanalen(abonnement.get('kanalen') or [])}")
        changes = ["duplicate: subscribe deletes it"] if i else subscription.differences(abonnement)
        for line in changes:
            click.echo(f"    {line}")
    if not ours:
        click.echo("  none: 'flask nc subscribe' creates it")
    elif len(ours) == 1 and not subscription.differences(ours[0]):
        click.echo("in sync")


@nc_group.command("check")
@click.option("--url", help="the callback URL to probe (default: NC_RECEIVER_CALLBACK_URL)")
def check_command(url: str | None) -> None:
    """Probe our callback as the NC does: no auth must give 401/403, our auth 204."""
    settings = NotificationReceiver.state(current_app).settings
    url = url or settings.callback_url
    if not url:
        raise click.ClickException("Set NC_RECEIVER_CALLBACK_URL or pass --url.")
    auth, _ = auth_for(settings)
    ok = True
    for label, headers, wanted in (("without auth", {}, (401, 403)),
                                   ("with auth", {"AUTHORIZATION": auth}, (204,))):
        try:
            status: int | str = requests.post(
                url, data=PROBE_BODY, timeout=10,
                headers={"Content-Type": "application/json", **headers}).status_code
        except requests.RequestException as exc:
            status = f"no answer ({type(exc).__name__})"
        good = status in wanted
        ok = ok and good
        click.echo(f"{'ok  ' if good else 'FAIL'} {label:<12} -> {status} "
                   f"(the NC wants {' or '.join(map(str, wanted))})")
    if not ok:
        raise click.ClickException(f"the NC would refuse an abonnement for {url}")


@nc_group.command("publish")
@click.option("--kanaal", default="zaken", show_default=True)
@click.option("--resource", default="status", show_default=True)
@click.option("--actie", default="create", show_default=True)
@click.option("--kenmerk", "kenmerken", multiple=True, metavar="KEY=VALUE",
              help="a kenmerk (repeatable)")
@click.option("--resource-url", help="default: a made-up URL")
@click.option("--hoofd-object", help="default: the resource URL")
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="a JSON notification to send as is (the other options are ignored)")
def publish_command(kanaal: str, resource: str, actie: str, kenmerken: tuple[str, ...],
                    resource_url: str | None, hoofd_object: str | None,
                    path: Path | None) -> None:
    """Send a notification to the NC, for testing."""
    if path is not None:
        body = json.loads(path.read_text())
    else:
        if any("=" not in k for k in kenmerken):
            raise click.BadParameter("write KEY=VALUE", param_hint="--kenmerk")
        resource_url = resource_url or f"https://example.invalid/{resource}/{uuid.uuid4()}"
        body = {"kanaal": kanaal, "hoofdObject": hoofd_object or resource_url,
                "resource": resource, "resourceUrl": resource_url, "actie": actie,
                "aanmaakdatum": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "kenmerken": dict(k.split("=", 1) for k in kenmerken)}
    settings = NotificationReceiver.state(current_app).settings
    if not (settings.nc_url and settings.nc_client_id and settings.nc_secret):
        raise click.ClickException("Set NC_RECEIVER_NC_URL, NC_RECEIVER_NC_CLIENT_ID and "
                                   "NC_RECEIVER_NC_SECRET to publish at the NC.")
    client = NCClient(settings.nc_url, settings.nc_client_id, settings.nc_secret)
    try:
        answer = client.publish(body)
    except NCReceiverError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"published {answer.get('kanaal')} {answer.get('resource')} {answer.get('actie')}")
