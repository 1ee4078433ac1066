"""The data plane: an asyncio MQTT 3.1 / 3.1.1 / 5.0 broker, multi-tenant, with per-client ACLs."""

from instamsg.broker.directory import Directory
from instamsg.broker.hooks import HookPoint, Hooks
from instamsg.broker.node import BrokerNode
from instamsg.broker.ports import ClientRecord, TenantRecord
from instamsg.broker.settings import BrokerSettings

__all__ = ["BrokerNode", "BrokerSettings", "ClientRecord", "Directory", "HookPoint", "Hooks", "TenantRecord"]
