from __future__ import annotations

from instamsg.broker.directory import AuthOutcome, Directory
from instamsg.broker.metrics import Meters
from instamsg.broker.ports import ClientRecord, MemorySessionStore, StoredSession, TenantRecord

UUID = "0a1b2c3d-0000-4000-8000-00000000000a"


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def on_client_changed(self, old: ClientRecord, new: ClientRecord) -> None:
        self.events.append(("changed", new.uuid))

    def on_client_removed(self, record: ClientRecord) -> None:
        self.events.append(("removed", record.uuid))

    def on_tenant_changed(self, record: TenantRecord) -> None:
        self.events.append(("tenant", record.active))

    def on_tenant_removed(self, tenant_id: str) -> None:
        self.events.append(("tenant_removed", tenant_id))


def make() -> tuple[Directory, Recorder]:
    directory = Directory()
    directory.load([TenantRecord("t", True, 2, 0)], [ClientRecord(UUID.upper(), "t", "tok", (), ())])
    recorder = Recorder()
    directory.add_listener(recorder)
    return directory, recorder


def test_authenticate_outcomes() -> None:
    directory, _ = make()
    assert directory.authenticate(UUID, b"tok")[0] is AuthOutcome.ACCEPTED
    assert directory.authenticate(UUID.upper(), b"tok")[0] is AuthOutcome.ACCEPTED
    assert directory.authenticate(UUID, b"bad") == (AuthOutcome.BAD_CREDENTIALS, None)
    assert directory.authenticate(UUID, None) == (AuthOutcome.BAD_CREDENTIALS, None)
    assert (
        directory.authenticate("0a1b2c3d-0000-4000-8000-0000000000ee", b"tok")[0]
        is AuthOutcome.BAD_CREDENTIALS
    )
    directory.upsert_client(ClientRecord(UUID, "t", "tok", (), (), blocked=True))
    assert directory.authenticate(UUID, b"tok")[0] is AuthOutcome.NOT_AUTHORIZED
    directory.upsert_client(ClientRecord(UUID, "t", "tok", (), ()))
    directory.upsert_tenant(TenantRecord("t", False, 2, 0))
    assert directory.authenticate(UUID, b"tok")[0] is AuthOutcome.NOT_AUTHORIZED


def test_listeners_see_changes() -> None:
    directory, recorder = make()
    directory.upsert_client(ClientRecord(UUID, "t", "tok", ("a",), ()))
    directory.upsert_tenant(TenantRecord("t", False, 2, 0))
    directory.remove_client(UUID)
    directory.remove_tenant("t")
    assert recorder.events == [
        ("changed", UUID),
        ("tenant", False),
        ("removed", UUID),
        ("tenant_removed", "t"),
    ]
    assert directory.get_client(UUID) is None


def test_budget_exact_and_raised_by_upsert() -> None:  # spec §6.4, C10: max 2 → the third is refused
    directory, _ = make()
    assert directory.charge_tenant("t") and directory.charge_tenant("t")
    assert not directory.charge_tenant("t")
    assert directory.messages_used("t") == 2
    directory.upsert_tenant(TenantRecord("t", True, 3, 1))  # stale stored usage never lowers the count
    assert directory.charge_tenant("t")
    assert not directory.charge_tenant("t")
    assert not directory.charge_tenant("unknown")
    directory.upsert_tenant(TenantRecord("zero", True, 0, 0))
    assert not directory.charge_tenant("zero")


def test_meters_take_and_reset() -> None:
    meters = Meters()
    counters = meters.client("u")
    counters[0] += 2
    counters[1] += 10
    meters.tenant("t")[2] += 1
    deltas = meters.take_deltas()
    assert deltas.clients["u"].messages_in == 2 and deltas.clients["u"].bytes_in == 10
    assert deltas.tenants["t"].messages_out == 1
    assert meters.take_deltas().clients == {}
    counters[3] += 5  # the held reference is still live
    assert meters.take_deltas().clients["u"].bytes_out == 5


def test_memory_session_store() -> None:
    store = MemorySessionStore()
    committed: list[bool] = []
    store.save(StoredSession("u", "t", 60), lambda: committed.append(True))
    assert committed == [True] and [s.client_uuid for s in store.load_all()] == ["u"]
    store.delete("u")
    assert store.load_all() == []
