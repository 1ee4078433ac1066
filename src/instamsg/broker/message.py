"""The Message routed inside the broker, encoded once for all its receivers."""

from __future__ import annotations

import time
from typing import Final

from instamsg.mqtt.encoder import PublishTemplate
from instamsg.mqtt.packets import MQTT_5, Properties

# Properties a broker forwards unchanged from publisher to subscriber (MQTT 5 §3.3.2.3).
FORWARDED_PROPERTIES: Final = (
    "payload_format_indicator",
    "content_type",
    "response_topic",
    "correlation_data",
    "user_property",
)


class Message:
    """An application message inside one tenant.

    `properties` holds only forwardable MQTT 5 properties; message expiry is kept as an absolute
    monotonic deadline so each delivery states the remaining lifetime (MQTT-3.3.2-6).
    `dup` is set only by control-plane deliveries that ask for it (REST `duplicate`, spec §2.5.5): the
    first transmission at QoS 1/2 then carries DUP=1; QoS 0 never does.
    """

    __slots__ = (
        "_qos0_frames",
        "_template",
        "dup",
        "expires_at",
        "payload",
        "properties",
        "publisher_uuid",
        "qos",
        "retain",
        "tenant_id",
        "topic",
    )

    def __init__(
        self,
        tenant_id: str,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        publisher_uuid: str | None,
        properties: Properties | None = None,
        expires_at: float | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.publisher_uuid = publisher_uuid
        self.properties = properties
        self.expires_at = expires_at
        self._template: PublishTemplate | None = None
        self._qos0_frames: dict[int, bytes] | None = None
        self.dup = False

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def remaining_expiry(self, now: float) -> int | None:
        if self.expires_at is None:
            return None
        return max(int(self.expires_at - now + 0.999), 0)

    def frame(
        self,
        protocol_level: int,
        qos: int,
        retain: bool,
        packet_id: int | None,
        dup: bool = False,
        extra_properties: Properties | None = None,
    ) -> bytes:
        """The PUBLISH bytes for one receiver: one encoding shared by every QoS 0 receiver of a level,
        the packet id spliced into a cached prefix for QoS 1/2, per-receiver MQTT 5 properties
        (subscription identifiers, topic alias, remaining expiry) on top."""
        if protocol_level == MQTT_5 and self.expires_at is not None:
            remaining = self.remaining_expiry(time.monotonic()) or 0
            extra_properties = dict(extra_properties or {})  # type: ignore[assignment]
            extra_properties["message_expiry_interval"] = remaining  # type: ignore[index]
        template = self._template
        if qos == 0 and not extra_properties:
            key = protocol_level | (2 if retain else 0) << 4
            frames = self._qos0_frames
            if frames is None:
                frames = self._qos0_frames = {}
            else:
                whole = frames.get(key)
                if whole is not None:
                    return whole
            if template is None and not self.properties:
                # The common QoS 0 case needs no template: encode the whole packet in one step.
                whole = PublishTemplate.qos0_frame(self.topic, self.payload, protocol_level, retain)
            else:
                if template is None:
                    template = self._template = PublishTemplate(self.topic, self.payload, self.properties)
                prefix, payload = template.parts(protocol_level, 0, retain)
                whole = prefix + payload
            frames[key] = whole
            return whole
        if template is None:
            template = self._template = PublishTemplate(self.topic, self.payload, self.properties)
        if protocol_level != MQTT_5:
            extra_properties = None
        prefix, payload = template.parts(protocol_level, qos, retain, dup, packet_id, extra_properties)
        return prefix + payload

    def frame_with_topic(
        self,
        protocol_level: int,
        topic: str,
        qos: int,
        retain: bool,
        packet_id: int | None,
        dup: bool,
        extra_properties: Properties | None,
    ) -> bytes:
        """Encode under another topic name (an empty one when a topic alias is already established)."""
        properties: Properties = dict(self.properties) if self.properties else {}  # type: ignore[assignment]
        if self.expires_at is not None:
            properties["message_expiry_interval"] = self.remaining_expiry(time.monotonic()) or 0
        prefix, payload = PublishTemplate(topic, self.payload, properties).parts(
            protocol_level, qos, retain, dup, packet_id, extra_properties
        )
        return prefix + payload


def forwarded_properties(properties: Properties) -> Properties | None:
    """The properties a broker passes on unchanged (user properties keep their order, MQTT-3.3.2-18)."""
    forwarded: dict[str, object] = {}
    for name in FORWARDED_PROPERTIES:
        value = properties.get(name)
        if value is not None:
            forwarded[name] = value
    return forwarded or None  # type: ignore[return-value]
