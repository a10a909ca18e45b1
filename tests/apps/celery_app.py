"""A Flask app in celery mode for a ``celery worker`` subprocess (tests/test_celery.py).

``celery -A celery_app:celery worker -Q $NCR_TEST_QUEUE``; the broker is $NCR_TEST_BROKER.
The handler appends each notification's resourceUrl to the Redis list ``<queue>:runs``.
"""

from __future__ import annotations

import os

import redis
from flask import Flask

from nc_receiver import Notification, NotificationReceiver, Router
from nc_receiver.celery_delivery import make_celery

QUEUE = os.environ["NCR_TEST_QUEUE"]
REDIS = os.environ.get("NCR_TEST_REDIS", "redis://127.0.0.1:6379/0")

flask_app = Flask("celery_app")
flask_app.config.update(
    NC_RECEIVER_AUTH_TOKENS=["celery-test-token"], NC_RECEIVER_DELIVERY="celery",
    NC_RECEIVER_CELERY_BROKER_URL=os.environ["NCR_TEST_BROKER"], NC_RECEIVER_CELERY_QUEUE=QUEUE,
    NC_RECEIVER_CELERY_REDIS_URL=REDIS, NC_RECEIVER_CALLBACK_PATH="/callback",
)
receiver = NotificationReceiver(router=Router(), include_default_router=False)
runs = redis.Redis.from_url(REDIS)


@receiver.on("zaken")
def record(n: Notification) -> None:
    runs.rpush(f"{QUEUE}:runs", n.resource_url)


receiver.init_app(flask_app)
celery = make_celery(flask_app)
