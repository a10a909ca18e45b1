"""``python -m nc_receiver.localnc``: run a local Notificatiecomponent until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Sequence

from .delivery import DEFAULT_RETRY_DELAYS
from .server import LocalNC


def _client(value: str) -> tuple[str, str]:
    client_id, sep, secret = value.partition(":")
    if not sep or not client_id or not secret:
        raise argparse.ArgumentTypeError(f"expected CLIENT_ID:SECRET, got {value!r}")
    return client_id, secret


def _kanaal(value: str) -> tuple[str, list[str]]:
    naam, _, filters = value.partition(":")
    if not naam:
        raise argparse.ArgumentTypeError(f"expected NAAM[:FILTER,...], got {value!r}")
    return naam, [f.strip() for f in filters.split(",") if f.strip()]


def _delays(value: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected seconds like '5,15,50', got {value!r}"
        ) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, serve, and return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m nc_receiver.localnc",
        description="A local Notificatiecomponent (Notificaties API 1.0.1) for development.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8001, help="port to listen on (8001)")
    parser.add_argument("--db", help="SQLite file for kanalen and abonnementen (in memory)")
    parser.add_argument(
        "--client",
        action="append",
        type=_client,
        default=[],
        metavar="ID:SECRET",
        help="an API client (repeatable); one with a random secret when left out",
    )
    parser.add_argument(
        "--kanaal",
        action="append",
        type=_kanaal,
        default=[],
        metavar="NAAM[:FILTER,...]",
        help="register a kanaal at start-up, as a publisher would (repeatable), "
        "e.g. zaken:bronorganisatie,zaaktype,vertrouwelijkheidaanduiding",
    )
    parser.add_argument(
        "--retry-delays",
        type=_delays,
        default=DEFAULT_RETRY_DELAYS,
        metavar="S,S,...",
        help="seconds before each delivery retry (5,15,50,50,50)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    nc = LocalNC(
        dict(args.client) or None, args.db, args.retry_delays, host=args.host, port=args.port
    )
    with nc:
        print(f"Local NC listening on {nc.url}", flush=True)
        for client_id, secret in nc.clients.items():
            print(f"  client_id={client_id} secret={secret}", flush=True)
        if args.kanaal:
            from ..nc_client import NCClient

            client_id, secret = next(iter(nc.clients.items()))
            publisher = NCClient(nc.url, client_id, secret)
            for naam, filters in args.kanaal:
                if publisher.get_kanaal(naam) is None:
                    publisher.create_kanaal(naam, filters)
                print(f"  kanaal {naam} (filters: {', '.join(filters) or 'none'})", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
