"""Unit tests of instamsg.domain.clients: topic lists, provisioning parameters, state, masking."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from instamsg.domain.clients import (
    MASK,
    Client,
    ClientState,
    ClientType,
    client_state,
    normalise_provisioning_params,
    public_provisioning_params,
    validate_topic_list,
)
from instamsg.domain.errors import InvalidTopicFilter, ValidationFailed

PEER = "cbf7d550-7204-11e4-a2ad-543530e3bc65"
T0 = datetime(2016, 5, 28, tzinfo=UTC)


# --- validate_topic_list ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entries",
    [
        [],
        ["sub1", "a/b/c", "a/+/c", "a/#", "#", "+", "+/+", "/", "a//b", "$SYS/x", "ünï/cødé"],
        [PEER, PEER.upper()],
        ["x" * 65535],
    ],
)
def test_valid_topic_lists(entries: list[str]) -> None:
    assert validate_topic_list(entries, "sub_topics") == tuple(dict.fromkeys(entries))


def test_duplicates_dropped_in_order() -> None:
    assert validate_topic_list(["b", "a", "b", "c", "a"], "pub_topics") == ("b", "a", "c")


@pytest.mark.parametrize(
    "entry",
    [
        "",
        "a/#/b",
        "a+",
        "+a",
        "a/b#",
        "#/a",
        "a\x00b",
        "\x00",
        "instamsg/other",
        "instamsg/",
        "x" * 65536,
        "\ud800",
    ],
)
def test_invalid_topic_filters(entry: str) -> None:
    for list_name in ("sub_topics", "pub_topics"):
        with pytest.raises(InvalidTopicFilter) as caught:
            validate_topic_list(["ok", entry], list_name)
        assert caught.value.code == "invalid_topic_filter"
        assert caught.value.details["field"] == f"{list_name}[1]"


def test_reserved_entries_per_list() -> None:
    # §6.2 item 3: exact D→S watcher topics may be subscribed; item 2: files/media may be published.
    for suffix in ("info", "metadata", "session", "network", "logs", "config/clientToServer", "media"):
        entry = f"instamsg/clients/{PEER}/{suffix}"
        assert validate_topic_list([entry], "sub_topics") == (entry,)
    for suffix in ("files", "media", "mediareply", "mediastop", "mediapause", "mediastreams"):
        entry = f"instamsg/clients/{PEER}/{suffix}"
        assert validate_topic_list([entry], "pub_topics") == (entry,)
    for list_name, entry in (
        ("pub_topics", f"instamsg/clients/{PEER}/logs"),
        ("sub_topics", f"instamsg/clients/{PEER}/files"),
        ("sub_topics", f"instamsg/clients/{PEER}/reboot"),
        ("pub_topics", f"instamsg/clients/{PEER}/reboot"),
        ("sub_topics", f"instamsg/clients/{PEER}/#"),
        ("sub_topics", "instamsg/clients/+/logs"),
        ("sub_topics", "instamsg/clients/not-a-uuid/logs"),
        ("sub_topics", "instamsg/webhook"),
        ("pub_topics", "instamsg/client/session"),
    ):
        with pytest.raises(InvalidTopicFilter):
            validate_topic_list([entry], list_name)


def test_too_many_entries() -> None:
    assert len(validate_topic_list([f"t{index}" for index in range(1000)], "sub_topics")) == 1000
    with pytest.raises(ValidationFailed) as caught:
        validate_topic_list([f"t{index}" for index in range(1001)], "sub_topics")
    assert caught.value.details["field"] == "sub_topics"


# --- normalise_provisioning_params --------------------------------------------------------------


def test_full_parameters_kept() -> None:
    params = {
        "provisioning_id": "356938035643809",
        "provisioning_key": "KEY01a",
        "gsm_msisdn": "9876543210",
        "gsm_apn": "internet",
        "gsm_username": "",
        "gsm_password": "pw",
        "gsm_sim_pin": "1234",
        "gsm_send_sms": "1",
        "gsm_isd_code": "+91",
    }
    assert normalise_provisioning_params(dict(params)) == params


@pytest.mark.parametrize(
    ("given", "expected"),
    [(True, "1"), (False, "0"), (1, "1"), (0, "0"), ("1", "1"), ("0", "0"), ("true", "1"), ("FALSE", "0")],
)
def test_gsm_send_sms_normalised(given: Any, expected: str) -> None:
    result = normalise_provisioning_params({"provisioning_id": "p", "gsm_send_sms": given})
    assert result["gsm_send_sms"] == expected


@pytest.mark.parametrize("given", ["2", "yes", 2, -1, 1.5, [], "", {}])
def test_gsm_send_sms_rejected(given: Any) -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalise_provisioning_params({"provisioning_id": "p", "gsm_send_sms": given})
    assert caught.value.details["field"] == "provisioning_params.gsm_send_sms"


@pytest.mark.parametrize("key", ["abcdef", "ABCDEF", "123456", "aB3dE6gH9jK1"])
def test_provisioning_key_accepted(key: str) -> None:
    assert (
        normalise_provisioning_params({"provisioning_id": "p", "provisioning_key": key})["provisioning_key"]
        == key
    )


@pytest.mark.parametrize(
    "key", ["test", "abcde", "aB3dE6gH9jK1m", "abc-def", "abc def", "abcdé1", "abc\x00def"]
)
def test_provisioning_key_rejected(key: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalise_provisioning_params({"provisioning_id": "p", "provisioning_key": key})
    assert caught.value.details["field"] == "provisioning_params.provisioning_key"
    assert caught.value.code == "validation_failed"


def test_empty_key_means_no_key() -> None:
    assert "provisioning_key" not in normalise_provisioning_params(
        {"provisioning_id": "p", "provisioning_key": ""}
    )


@pytest.mark.parametrize("value", [None, "", " ", "a b", "x" * 65, "é", "tab\t", 5])
def test_provisioning_id_rules(value: Any) -> None:
    params = {} if value is None else {"provisioning_id": value}
    with pytest.raises(ValidationFailed) as caught:
        normalise_provisioning_params(params)
    assert caught.value.details["field"] == "provisioning_params.provisioning_id"


def test_provisioning_id_forms() -> None:
    for value in ("aa:bb:cc:dd:ee:ff", "356938035643809", "SN-0001/x", "x" * 64, "!~"):
        assert normalise_provisioning_params({"provisioning_id": value})["provisioning_id"] == value


def test_unknown_parameter_and_non_string_values() -> None:
    with pytest.raises(ValidationFailed) as caught:
        normalise_provisioning_params({"provisioning_id": "p", "gsmApn": "x"})
    assert caught.value.details["field"] == "provisioning_params.gsmApn"
    with pytest.raises(ValidationFailed) as caught:
        normalise_provisioning_params({"provisioning_id": "p", "gsm_apn": 5})
    assert caught.value.details["field"] == "provisioning_params.gsm_apn"


def test_masked_values_keep_previous_secrets() -> None:
    previous = {
        "provisioning_id": "p",
        "provisioning_key": "OLDKEY1",
        "gsm_password": "pw",
        "gsm_sim_pin": "1234",
    }
    masked = {"provisioning_id": "p", "provisioning_key": MASK, "gsm_password": MASK, "gsm_sim_pin": MASK}
    assert normalise_provisioning_params(masked, previous=previous) == previous
    # Without a stored value, the mask stores nothing (it is never stored as a secret).
    result = normalise_provisioning_params(masked, previous={"provisioning_id": "p"})
    assert result == {"provisioning_id": "p"}
    assert normalise_provisioning_params(masked) == {"provisioning_id": "p"}


def test_omitted_secret_kept_and_null_removes_it() -> None:
    """Spec C15: an omitted write-only field keeps its stored value; an explicit null removes it."""
    previous = {"provisioning_id": "p", "provisioning_key": "OLDKEY1", "gsm_password": "pw", "gsm_apn": "a"}
    result = normalise_provisioning_params({"provisioning_id": "q", "gsm_password": None}, previous=previous)
    assert result == {"provisioning_id": "q", "provisioning_key": "OLDKEY1"}
    # Plain fields are replaced with the object: gsm_apn is gone.
    assert "gsm_apn" not in result
    new = normalise_provisioning_params(
        {"provisioning_id": "p", "provisioning_key": "NEWKEY1"}, previous=previous
    )
    assert new["provisioning_key"] == "NEWKEY1"


def test_the_mask_is_not_a_valid_new_key() -> None:
    # A literal "********" never becomes a stored key.
    result = normalise_provisioning_params({"provisioning_id": "p", "provisioning_key": MASK}, previous=None)
    assert "provisioning_key" not in result


# --- public_provisioning_params -----------------------------------------------------------------


def test_public_parameters_mask_write_only_fields() -> None:
    assert public_provisioning_params(None) is None
    shown = public_provisioning_params(
        {"provisioning_id": "p", "provisioning_key": "KEY01a", "gsm_password": "pw", "gsm_apn": "internet"}
    )
    assert shown == {
        "provisioning_id": "p",
        "provisioning_key": MASK,
        "gsm_msisdn": None,
        "gsm_apn": "internet",
        "gsm_username": None,
        "gsm_password": MASK,
        "gsm_sim_pin": None,
        "gsm_send_sms": None,
        "gsm_isd_code": None,
    }
    assert "KEY01a" not in repr(shown) and "'pw'" not in repr(shown)


# --- client_state (spec §1.4) -------------------------------------------------------------------


def _client(**changes: Any) -> Client:
    base = Client(
        id=PEER,
        tenant_id="t",
        type=ClientType.DEVICE,
        name="n",
        description="",
        sub_topics=(),
        pub_topics=(),
        secure_cert_enabled=False,
        blocked=False,
        auth_token="0" * 32,
        provisioning_params=None,
        provisioned_at=None,
        profile=None,
        last_connect_at=None,
        last_disconnect_at=None,
        created_at=T0,
        updated_at=T0,
    )
    return dataclasses.replace(base, **changes)


PARAMS = {"provisioning_id": "p"}


@pytest.mark.parametrize(
    ("changes", "online", "expected"),
    [
        ({}, False, ClientState.OFFLINE),
        ({}, True, ClientState.ONLINE),
        # blocked comes first, even when online or unprovisioned
        ({"blocked": True}, True, ClientState.BLOCKED),
        ({"blocked": True, "provisioning_params": PARAMS}, False, ClientState.BLOCKED),
        # online before unprovisioned and provisioned
        ({"provisioning_params": PARAMS}, True, ClientState.ONLINE),
        ({"provisioning_params": PARAMS}, False, ClientState.UNPROVISIONED),
        ({"provisioning_params": PARAMS, "provisioned_at": T0}, False, ClientState.PROVISIONED),
        ({"provisioning_params": PARAMS, "provisioned_at": T0}, True, ClientState.ONLINE),
        # a normal connection after provisioning: offline again
        (
            {
                "provisioning_params": PARAMS,
                "provisioned_at": T0,
                "last_connect_at": T0 + timedelta(seconds=1),
            },
            False,
            ClientState.OFFLINE,
        ),
        # a connection before the (re)provisioning does not count
        (
            {
                "provisioning_params": PARAMS,
                "provisioned_at": T0,
                "last_connect_at": T0 - timedelta(seconds=1),
            },
            False,
            ClientState.PROVISIONED,
        ),
        ({"last_connect_at": T0, "last_disconnect_at": T0}, False, ClientState.OFFLINE),
    ],
)
def test_client_state_order(changes: dict[str, Any], online: bool, expected: ClientState) -> None:
    assert client_state(_client(**changes), online=online) is expected


def test_state_values_are_the_api_names() -> None:
    assert {state.value for state in ClientState} == {
        "online",
        "offline",
        "blocked",
        "provisioned",
        "unprovisioned",
    }
