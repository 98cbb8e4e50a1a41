"""Nudges for the relay over Redis pub/sub: a command's process publishes one, the following relay wakes.

Fire and forget: a nudge nobody hears (no relay listening, Redis down) costs
latency, never an event; the relay looks at the outbox every second anyway.
Neither side retries: a request must not wait for a Redis that is down.
"""

from __future__ import annotations

import logging
import time

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

logger = logging.getLogger(__name__)


class RedisRelayNudges:
    def __init__(self, url: str, channel: str):
        self.channel = channel
        self._client = redis.Redis.from_url(
            url, socket_connect_timeout=1, socket_timeout=1, retry=Retry(NoBackoff(), 0)
        )

    def nudge(self) -> None:
        """Wake the relay; raises RedisError if Redis is unreachable."""
        self._client.publish(self.channel, b"")

    def listen(self) -> RelayNudgeListener:
        return RelayNudgeListener(self._client, self.channel)


class RelayNudgeListener:
    """The relay's side: `wait(timeout)` returns True as soon as a nudge came since the last wait.

    Nudges that arrive while the relay is busy wait in the subscription, so
    none is missed; several are taken as one.
    """

    def __init__(self, client: redis.Redis, channel: str):
        self._client, self._channel = client, channel
        self._pubsub: redis.client.PubSub | None = None
        self._failing = False

    def wait(self, timeout: float) -> bool:
        try:
            if self._pubsub is None:
                self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
                self._pubsub.subscribe(self._channel)
            if self._pubsub.get_message(timeout=timeout) is None:
                return False
            while self._pubsub.get_message(timeout=0.0) is not None:
                pass
            if self._failing:
                logger.info("relay nudges heard again")
                self._failing = False
            return True
        except RedisError as exc:
            if not self._failing:
                logger.warning("relay nudges unavailable (%s); relaying every %.0f s meanwhile", exc, timeout)
                self._failing = True
            self.close()
            time.sleep(timeout)
            return False

    def close(self) -> None:
        if self._pubsub is not None:
            try:
                self._pubsub.close()
            except RedisError:
                pass
            self._pubsub = None
