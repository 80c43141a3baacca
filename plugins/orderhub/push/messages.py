"""What a push message is once a platform's dialect is read: the order it
names, and the platform's own message id (de-duplication key end to end:
``Nats-Msg-Id`` at publish, and harmless repeats after, since the loader
keys raw rows by payload hash)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class PushMessage:
    platform: str
    shop_id: str
    order_id: str
    msg_id: str
    topic: str  # the platform's tag or topic, as sent

    @property
    def subject(self) -> str:
        return f"push.{self.platform}.{self.shop_id}"

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> PushMessage:
        return cls(**json.loads(data))


@dataclass(frozen=True)
class Malformed:
    """A signed message the intake cannot read: quarantined with the reason."""

    raw_text: str
    reason: str


class PushRejected(Exception):
    """A push whose signature does not verify (forged or unsigned): answered
    with the platform's error, counted, never published."""
