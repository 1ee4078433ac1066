"""Device-side routing rules of reserved topics (spec §6.2, §6.3, C8, C9, S15) on top of the broker ACL.

The broker's ACL (`broker/access.py`) already decides application topics, the client's own inbox and
namespace, exact p2p entries and watcher entries. This `client.authorize` hook adds what needs the
topic catalogue or per-client state, and fails closed:

- publish to a device→server special topic: always allowed, whatever UUID the topic names (the
  message is attributed to the publishing connection, §6.2 item 3);
- publish to a server→device special topic: denied, except another client's `files`/`media*` topic
  listed exactly in `pub_topics`, with the target in the same tenant (§6.2 item 2);
- publish to any other `instamsg/` topic: denied (§6.2 item 4);
- p2p (a UUID topic): loopback, an exact `pub_topics` entry (case-insensitive; wildcards never grant
  p2p, C9), or the reply window of S15: a client that received a p2p message may publish to that
  message's `reply_to` peer for `reply_window` seconds without an entry, provided `reply_to` names
  the message's publisher (a forged `reply_to` opens nothing; control-plane messages without a
  publisher keep their `reply_to`);
- subscribe to an `instamsg/` filter outside the client's own namespace: only an exact watcher entry
  naming a device→server topic of a client of the same tenant (§6.3).

Decisions are cached per connection by the broker (`AccessCache`). A reply-window grant drops a cached
refusal of that peer, and the cache is cleared again when the window closes, so neither a stale "deny"
nor a stale "allow" outlives the window.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from instamsg.broker import access
from instamsg.broker.hooks import HookPoint, Priority
from instamsg.broker.router import is_uuid
from instamsg.broker.topic_tree import has_wildcard
from instamsg.protocol.payloads import parse_envelope
from instamsg.protocol.topics import USER_DRIVABLE_KINDS, Direction, classify, client_topic

if TYPE_CHECKING:
    from instamsg.broker.channel import Channel
    from instamsg.broker.message import Message
    from instamsg.broker.node import BrokerNode
    from instamsg.broker.ports import ClientRecord
    from instamsg.broker.timers import Timer
    from instamsg.protocol.plugin import DeviceProtocol

logger = logging.getLogger(__name__)

DEFAULT_REPLY_WINDOW: Final = 3600.0
# Peers a client may reply to at once; the oldest grant is forgotten first (bounded memory per client).
MAX_REPLY_PEERS: Final = 256
# Envelopes are small (C reads at most 5000 bytes, §7.3); a large payload is not looked into.
MAX_ENVELOPE_BYTES: Final = 16_384


@dataclass(slots=True)
class _Grant:
    expires_at: float
    timer: Timer | None = None


class Routing:
    """The `client.authorize` and `message.delivered` hooks of the device protocol."""

    def __init__(
        self,
        node: BrokerNode,
        reply_window: float = DEFAULT_REPLY_WINDOW,
        max_reply_peers: int = MAX_REPLY_PEERS,
    ) -> None:
        self.node = node
        self.reply_window = reply_window
        self.max_reply_peers = max_reply_peers
        # client UUID → peer UUID → grant, oldest first.
        self._grants: dict[str, OrderedDict[str, _Grant]] = {}

    # ---- authorisation ---------------------------------------------------------------------------

    def authorize(self, channel: Channel, action: str, topic: str, allowed: bool) -> bool | None:
        client = channel.client
        if client is None:
            return False
        if action == access.PUBLISH:
            if topic.startswith("instamsg/"):
                return self._may_publish_reserved(client, topic)
            if is_uuid(topic):
                return self._may_publish_p2p(client, topic.lower())
            return None
        if topic.startswith("instamsg/") and not topic.startswith("instamsg/clients/" + client.uuid + "/"):
            return allowed and self._is_watcher_filter(client, topic)
        return None

    def _may_publish_reserved(self, client: ClientRecord, topic: str) -> bool:
        special = classify(topic)
        if special is None:
            return False
        if special.direction is Direction.DEVICE_TO_SERVER:
            return True
        if special.kind not in USER_DRIVABLE_KINDS or special.client_uuid is None:
            return False
        # Only the canonical spelling is routable: implicit subscriptions use the lowercase UUID.
        if topic != client_topic(special.client_uuid, special.kind) or topic not in client.pub_topics:
            return False
        target = self.node.directory.get_client(special.client_uuid)
        return target is not None and target.tenant_id == client.tenant_id

    def _may_publish_p2p(self, client: ClientRecord, peer: str) -> bool:
        if peer == client.uuid:
            return True  # loopback
        if any(entry.lower() == peer for entry in client.pub_topics):
            return True
        return self.in_reply_window(client.uuid, peer)

    def _is_watcher_filter(self, client: ClientRecord, topic_filter: str) -> bool:
        if has_wildcard(topic_filter):
            return False
        special = classify(topic_filter)
        if (
            special is None
            or special.direction is not Direction.DEVICE_TO_SERVER
            or special.client_uuid is None
        ):
            return False
        watched = self.node.directory.get_client(special.client_uuid)
        return watched is not None and watched.tenant_id == client.tenant_id

    # ---- reply window (S15) ----------------------------------------------------------------------

    def in_reply_window(self, client_uuid: str, peer: str) -> bool:
        grants = self._grants.get(client_uuid)
        if not grants:
            return False
        grant = grants.get(peer)
        return grant is not None and grant.expires_at > self.node.wheel.now()

    def delivered(self, client_uuid: str, message: Message) -> None:
        """A p2p message reached `client_uuid`: open the reply window towards its `reply_to`, when that
        is the message's publisher."""
        if self.reply_window <= 0 or not is_uuid(message.topic):
            return
        payload = message.payload
        if len(payload) > MAX_ENVELOPE_BYTES or (b"reply_to" not in payload and b"replyTo" not in payload):
            return
        reply_to = parse_envelope(payload).reply_to
        if reply_to is None:
            return
        peer = reply_to.strip().lower()
        if not is_uuid(peer) or peer == client_uuid:
            return
        publisher = message.publisher_uuid
        if publisher is not None and peer != publisher.lower():
            # The publisher writes `reply_to`: naming anyone but itself would let it open a channel
            # from the recipient to a third client (every genuine library names itself, §7.1).
            return
        self.grant(client_uuid, peer)

    def grant(self, client_uuid: str, peer: str) -> None:
        grants = self._grants.get(client_uuid)
        if grants is None:
            grants = self._grants[client_uuid] = OrderedDict()
        expires_at = self.node.wheel.now() + self.reply_window
        grant = grants.get(peer)
        if grant is None:
            grant = grants[peer] = _Grant(expires_at)
            grant.timer = self.node.wheel.schedule(self.reply_window, lambda: self._expire(client_uuid, peer))
            while len(grants) > self.max_reply_peers:
                _, oldest = grants.popitem(last=False)
                if oldest.timer is not None:
                    oldest.timer.cancel()
        else:
            grant.expires_at = expires_at
            grants.move_to_end(peer)
        channel = self.node.channels.get(client_uuid)
        if channel is not None and channel.access_cache.get(access.PUBLISH, peer) is False:
            # A refusal cached before the grant must not outlive it (the cache has no per-entry removal).
            channel.access_cache.clear()

    def _expire(self, client_uuid: str, peer: str) -> None:
        grants = self._grants.get(client_uuid)
        grant = None if grants is None else grants.get(peer)
        if grants is None or grant is None:
            return
        remaining = grant.expires_at - self.node.wheel.now()
        if remaining > 0:
            # Extended by a later message: check again when the new window ends.
            grant.timer = self.node.wheel.schedule(remaining, lambda: self._expire(client_uuid, peer))
            return
        del grants[peer]
        if not grants:
            del self._grants[client_uuid]
        channel = self.node.channels.get(client_uuid)
        if channel is not None and channel.access_cache.get(access.PUBLISH, peer) is not None:
            channel.access_cache.clear()

    def reply_peer_count(self, client_uuid: str) -> int:
        """How many reply windows `client_uuid` holds (for tests and diagnostics)."""
        return len(self._grants.get(client_uuid, ()))


def install_routing(devices: DeviceProtocol, reply_window: float = DEFAULT_REPLY_WINDOW) -> Routing:
    """Register the routing hooks on the device protocol's broker node."""
    routing = Routing(devices.node, reply_window)
    hooks = devices.node.hooks
    hooks.add(HookPoint.CLIENT_AUTHORIZE, routing.authorize, Priority.NORMAL)
    hooks.add(HookPoint.MESSAGE_DELIVERED, routing.delivered, Priority.NORMAL)
    return routing
