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


@dataclass
class Frame:
    """One frame a long connection (Taobao TMC, Pinduoduo) brought, read:
    ``kind`` is ``message`` (one order message, or one that cannot be read),
    ``heartbeat``, ``connected``, ``refused`` (the platform refused our
    connect) or ``other``; ``ack`` is the frame that confirms it, sent only
    after the message is safe on JetStream (or quarantined)."""

    kind: str
    message: PushMessage | None = None
    malformed: Malformed | None = None
    ack: str | None = None
    detail: str = ""


def order_frame(platform: str, text: str, ack: str, msg_id: str, topic: str, read,
                needs: str) -> Frame:
    """A long connection's frame that names an order: ``read()`` returns
    (shop id, order id) from it; a frame it cannot read them from is
    malformed (quarantined with what it lacks, and confirmed)."""
    try:
        shop_id, order_id = read()
        return Frame("message", ack=ack, message=PushMessage(
            platform, str(shop_id), str(order_id), str(msg_id), topic))
    except (KeyError, TypeError, ValueError) as exc:
        return Frame("message", ack=ack, malformed=Malformed(
            text, f"{platform} push: message lacks a usable {needs}"
                  f" ({type(exc).__name__}: {exc})"))
