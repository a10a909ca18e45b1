"""Where the celery mode keeps dedup keys and dead letters (Redis, or the fallbacks)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from .delivery import DeliveryUnavailable, SeenHandlers

log = logging.getLogger(__name__)


class CeleryStore:
    """Dedup keys and dead letters: in Redis when one is known, else process-local/broker."""

    PENDING_TTL = 30  # a claim whose publish never finished (crash) frees itself

    def __init__(self, celery_app: Any, queue: str, redis_url: str | None,
                 window: float) -> None:
        self.celery, self.queue, self.window = celery_app, queue, max(1, int(window))
        self.prefix = f"nc_receiver:{queue}:"
        self.redis: Any = None
        if redis_url:
            import redis

            self.redis = redis.Redis.from_url(redis_url)  # connects on first use
        self.local = SeenHandlers(window)

    def claim(self, key: str, wait: float = 5.0) -> bool:
        """True: this request publishes. False: a duplicate that is already queued."""
        if self.redis is None:
            if self.local.done(key):
                return False
            self.local.add(key, frozenset({"queued"}))
            return True
        deadline = time.monotonic() + wait
        try:
            while True:
                if self.redis.set(self.prefix + key, b"pending", nx=True, ex=self.PENDING_TTL):
                    return True
                if self.redis.get(self.prefix + key) == b"queued":
                    return False
                if time.monotonic() > deadline:  # another request is still publishing it
                    raise DeliveryUnavailable("The same notification is being queued.")
                time.sleep(0.02)
        except DeliveryUnavailable:
            raise
        except Exception as exc:
            raise DeliveryUnavailable("The dedup store (Redis) is unavailable.") from exc

    def queued(self, key: str) -> None:
        if self.redis is not None:
            try:
                self.redis.set(self.prefix + key, b"queued", ex=self.window)
            except Exception:  # the task is queued; at worst a duplicate runs again
                log.warning("nc_receiver: could not record a dedup key in Redis")

    def release(self, key: str) -> None:
        try:
            if self.redis is not None:
                self.redis.delete(self.prefix + key)
            else:
                self.local.add(key, frozenset())
        except Exception:
            log.warning("nc_receiver: could not release a dedup key; it expires in %d s",
                        self.PENDING_TTL)

    def dead_letter(self, record: str) -> None:
        if self.redis is not None:
            self.redis.lpush(self.prefix + "dead", record)
            return
        with self.celery.connection_for_write() as conn:
            queue = conn.SimpleQueue(f"{self.queue}.dead")
            queue.put(json.loads(record))
            queue.close()

    def _need_redis(self) -> None:
        if self.redis is None:
            raise RuntimeError(
                f"Without Redis the dead letters are messages in the broker queue "
                f"'{self.queue}.dead'; inspect them with your broker's tools, or set "
                "NC_RECEIVER_CELERY_REDIS_URL.")

    def dead_records(self, limit: int) -> list[bytes]:
        self._need_redis()
        records: list[bytes] = self.redis.lrange(self.prefix + "dead", 0, limit - 1)
        return records

    def take_dead_records(self) -> list[bytes]:
        self._need_redis()
        pipe = self.redis.pipeline()
        pipe.lrange(self.prefix + "dead", 0, -1)
        pipe.delete(self.prefix + "dead")
        records: list[bytes] = pipe.execute()[0]
        return records
