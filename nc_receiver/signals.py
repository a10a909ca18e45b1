"""Blinker signals sent by nc_receiver, in a private namespace.

Every signal is sent with the Flask app as sender (``current_app._get_current_object()``),
so ``signal.connect(func, sender=app)`` scopes a subscriber to one app. Keyword arguments:

==========================  ================================================================
``notification_received``   ``notification``, ``identity`` — authenticated and valid,
                            before delivery (probes included; check ``is_probe``)
``notification_handled``    ``notification``, ``handlers`` (names that ran) — all succeeded;
                            in the inbox and celery modes once per handler as it succeeds,
                            from the worker
``handler_failed``          ``notification``, ``handler`` (name), ``error`` (the exception);
                            on every failed attempt
``notification_rejected``   ``status``, ``code`` — a 4xx answer (no payload is passed)
``notification_queued``     ``notification``, ``mode`` (``inbox``/``celery``), ``duplicate``
                            — stored or published (in the request, before the 204)
``handler_retried``         ``notification``, ``handler``, ``error``, ``attempt``, ``delay``
``notification_dead_lettered``  ``notification``, ``handler``, ``error``, ``attempts``
``subscription_synced``     ``action`` (``created``/``updated``/``unchanged``), ``abonnement``
==========================  ================================================================
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

notification_received = _signals.signal("notification-received")
notification_handled = _signals.signal("notification-handled")
handler_failed = _signals.signal("handler-failed")
notification_rejected = _signals.signal("notification-rejected")
notification_queued = _signals.signal("notification-queued")
handler_retried = _signals.signal("handler-retried")
notification_dead_lettered = _signals.signal("notification-dead-lettered")
subscription_synced = _signals.signal("subscription-synced")
