"""Tests of the pure payload module against the literal bytes of the protocol specification."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instamsg.protocol.payloads import (
    ConfigReport,
    Envelope,
    MessageIdCounter,
    SmsNotSendable,
    build_send_envelope,
    certificate_push_payload,
    config_push_payload,
    file_command_payload,
    hexify_mac,
    logging_command_payload,
    masked_sms_text,
    normalise_device_report,
    parse_config_report,
    parse_envelope,
    parse_lenient,
    parse_log_line,
    provisioning_rc6_payload,
    provisioning_sms_text,
    push_form,
    safe_for_c_reader,
)

UUID = "cbf7d550-7204-11e4-a2ad-543530e3bc65"
PEER = "0d5c2a8e-1b6f-4c1e-9d3a-7f2b8e6a4c10"
TOKEN = "0bd3a1c7817a4a1da772a89fcca48523"

# Characters that exercise every branch of the lenient scanners.
SCANNER_ALPHABET = st.text(alphabet="'\":{}[](),\\ \t\r\n-0123456789.abcTrueFalsNoel_", max_size=200)


def json_safe(value: Any) -> bool:
    """True when ``value`` serialises as strict JSON encodable in UTF-8 (what a JSON column stores)."""
    json.dumps(value, allow_nan=False).encode("utf-8")
    return True


# --------------------------------------------------------------------------------------------------
# §11.2 parse_lenient
# --------------------------------------------------------------------------------------------------


class TestParseLenient:
    def test_json_object_nested(self) -> None:
        payload = b'{"network_interface": "wlan0", "signal_strength": -60, "cpu": {"make": "arm"}}'
        assert parse_lenient(payload) == {
            "network_interface": "wlan0",
            "signal_strength": -60,
            "cpu": {"make": "arm"},
        }

    @pytest.mark.parametrize("payload", ["[1, 2]", '"text"', "42", "null", "true"])
    def test_json_that_is_not_an_object_is_raw(self, payload: str) -> None:
        assert parse_lenient(payload) == {"raw": payload}

    def test_python_repr_with_true_false_none(self) -> None:
        payload = "{'imei': '356938035643809', 'roaming': True, 'gps': False, 'msisdn': None, 'v': 1.0}"
        assert parse_lenient(payload) == {
            "imei": "356938035643809",
            "roaming": True,
            "gps": False,
            "msisdn": None,
            "v": 1.0,
        }

    def test_python_repr_tuples_sets_and_bytes_become_json_values(self) -> None:
        result = parse_lenient("{'a': (1, 2), 'b': {3}, 'c': b'x', 1: 'one', None: 'n', 'd': 1j}")
        assert result == {"a": [1, 2], "b": [3], "c": "x", "1": "one", "null": "n", "d": "1j"}
        assert json_safe(result)

    def test_c_per_key_form_exact(self) -> None:
        payload = b"{'key' : 'PING_REQ_INTERVAL', 'type' : '1', 'val' : '180', 'desc' : 'Ping interval'}"
        assert parse_lenient(payload) == {
            "key": "PING_REQ_INTERVAL",
            "type": "1",
            "val": "180",
            "desc": "Ping interval",
        }

    def test_c_per_key_form_with_apostrophe_in_desc_uses_the_scanner(self) -> None:
        payload = (
            "{'key' : 'NTP_SERVER', 'type' : '0', 'val' : 'pool.ntp.org', 'desc' : 'Client's NTP, used'}"
        )
        assert parse_lenient(payload) == {
            "key": "NTP_SERVER",
            "type": "0",
            "val": "pool.ntp.org",
            "desc": "Client's NTP, used",
        }

    def test_c_session_pseudo_json(self) -> None:
        payload = (
            "{'method' : 'GPRS', 'ip_address' : '10.0.0.2', 'antina_status' : '1', 'signal_strength' : '-71'}"
        )
        assert parse_lenient(payload) == {
            "method": "GPRS",
            "ip_address": "10.0.0.2",
            "antina_status": "1",
            "signal_strength": "-71",
        }

    def test_double_quotes_with_unescaped_quote_in_value(self) -> None:
        assert parse_lenient('{"desc": "say "hi" now", "x": "1"}') == {"desc": 'say "hi" now', "x": "1"}

    @pytest.mark.parametrize(
        ("payload", "expected"),
        [
            ("a:1,b:x", {"a": 1, "b": "x"}),
            ("{a: 1.5, b: null, c: True, d: -3}", {"a": 1.5, "b": None, "c": True, "d": -3}),
            ("'a': \"x\", b : 'y'", {"a": "x", "b": "y"}),
            ("{ a : }", {"a": ""}),
            ("a: 1e999", {"a": "1e999"}),
        ],
    )
    def test_flat_scanner_forms(self, payload: str, expected: dict[str, Any]) -> None:
        assert parse_lenient(payload) == expected

    @pytest.mark.parametrize(
        "payload",
        ["", "   ", "SECRET RECEIVED", "hello world: x", "{'a' 'b'}", "{{{", "'unterminated", "::"],
    )
    def test_nothing_object_like_is_raw(self, payload: str) -> None:
        assert parse_lenient(payload) == {"raw": payload}

    def test_bytes_that_are_not_utf8_are_replaced(self) -> None:
        assert parse_lenient(b"{'a': '\xff'}") == {"a": "\ufffd"}
        assert parse_lenient(b"\xff\xfe") == {"raw": "\ufffd\ufffd"}

    def test_bom_and_trailing_nul_are_ignored(self) -> None:
        assert parse_lenient('\ufeff{"a": 1}') == {"a": 1}
        assert parse_lenient(b'{"a": 1}\x00\x00') == {"a": 1}

    def test_nan_and_lone_surrogates_are_made_storable(self) -> None:
        result = parse_lenient('{"a": NaN, "b": -Infinity, "c": "\\ud800", "d": "\\ud83d\\ude00"}')
        assert result == {"a": "NaN", "b": "-Infinity", "c": "\ufffd", "d": "\U0001f600"}
        assert json_safe(result)

    def test_backslash_escape_in_repr_gives_the_same_value_with_or_without_warnings(self) -> None:
        # pytest turns warnings into errors, so literal_eval refuses this and the scanner answers.
        assert parse_lenient(r"{'path': 'C:\data'}") == {"path": "C:\\data"}

    def test_literal_eval_is_skipped_above_64_kib(self) -> None:
        small = "{'a': {'b': '" + "x" * 1000 + "'}}"
        large = "{'a': {'b': '" + "x" * 70_000 + "'}}"
        assert parse_lenient(small) == {"a": {"b": "x" * 1000}}
        assert isinstance(parse_lenient(large)["a"], str)

    def test_huge_integer_does_not_raise(self) -> None:
        assert parse_lenient('{"a": ' + "9" * 5000 + "}") == {"a": "9" * 5000}

    def test_deep_nesting_does_not_raise(self) -> None:
        deep = '{"a": ' * 100_000 + "1" + "}" * 100_000
        result = parse_lenient(deep)  # too deep for json.loads, too big for literal_eval: flat scan
        assert result == {"a": deep[len('{"a": ') : -1]}
        shallow_but_wide = "[" * 50_000 + "]" * 50_000
        assert parse_lenient(shallow_but_wide) == {"raw": shallow_but_wide}

    @settings(max_examples=200, deadline=None)
    @given(st.one_of(st.binary(max_size=300), st.text(max_size=300), SCANNER_ALPHABET))
    def test_never_raises_and_is_always_storable(self, payload: bytes | str) -> None:
        result = parse_lenient(payload)
        assert isinstance(result, dict)
        assert json_safe(result)

    @settings(max_examples=100, deadline=None)
    @given(
        st.dictionaries(
            st.text(alphabet="abcdefgh_", min_size=1, max_size=8),
            st.one_of(st.integers(), st.text(alphabet="xyz. -", max_size=10), st.booleans(), st.none()),
            min_size=1,
        )
    )
    def test_json_and_repr_round_trip(self, data: dict[str, Any]) -> None:
        assert parse_lenient(json.dumps(data)) == data
        assert parse_lenient(repr(data)) == data


PATHOLOGICAL = [
    '"' * 1_000_000,
    "'" * 1_000_000,
    ":" * 1_000_000,
    "{" * 1_000_000,
    "}" * 1_000_000,
    "[" * 1_000_000,
    ",:" * 500_000,
    "{'a':" * 200_000,
    "a:" * 500_000,
    "'a' " * 250_000,
    "'a' : " * 170_000,
    "'a':'b'," * 125_000,
    '"}' * 500_000,
    '"body": "' * 110_000,
    '"status": 1, ' * 80_000,
    "'message_id': '" * 65_000,
    " " * 1_000_000 + "'",
    "'" + " " * 1_000_000,
    "-" * 60_000 + "1",
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("payload", PATHOLOGICAL, ids=lambda payload: f"{payload[:12]!r}x{len(payload)}")
def test_readers_finish_on_one_megabyte_of_pathological_input(payload: str) -> None:
    # A hang guard, not a speed test: catastrophic backtracking on these inputs takes hours, a linear
    # reader well under a second; the timeout marker fails the test only in the first case.
    for reader in (parse_lenient, parse_envelope, parse_log_line):
        reader(payload)


# --------------------------------------------------------------------------------------------------
# §11.3 normalisation
# --------------------------------------------------------------------------------------------------


class TestNormalise:
    def test_c_session(self) -> None:
        report = {"method": "GPRS", "ip_address": "10.0.0.2", "antina_status": "1", "signal_strength": "-71"}
        assert normalise_device_report(report) == {
            "network_interface": "GPRS",
            "ip_address": "10.0.0.2",
            "antenna_status": "1",
            "signal_strength": -71,
        }
        assert report["signal_strength"] == "-71"  # the input is untouched

    def test_existing_target_keys_win_and_both_stay(self) -> None:
        report = {"antina_status": "0", "antenna_status": "1", "method": "x", "network_interface": "wlan0"}
        assert normalise_device_report(report) == report

    @pytest.mark.parametrize(
        ("signal", "expected"),
        [("-71", -71), (" 15 ", 15), ("+3", 3), (-60, -60), ("-71.5", "-71.5"), ("n/a", "n/a"), ("", "")],
    )
    def test_signal_strength(self, signal: Any, expected: Any) -> None:
        assert normalise_device_report({"signal_strength": signal})["signal_strength"] == expected

    def test_mac_keys(self) -> None:
        assert normalise_device_report({"mac_id": "AA:BB:CC:DD:EE:0F"}) == {
            "mac_id": "AA:BB:CC:DD:EE:0F",
            "mac_id_normalised": "aabbccddee0f",
        }
        assert normalise_device_report({"mac_address": "AA-BB-CC-DD-EE-0F"})["mac_id_normalised"] == (
            "aabbccddee0f"
        )
        both = normalise_device_report({"mac_id": "01:02:03:04:05:06", "mac_address": "ff:ff:ff:ff:ff:ff"})
        assert both["mac_id_normalised"] == "010203040506"
        assert "mac_id_normalised" not in normalise_device_report({"imei": "1"})

    def test_python_repr_with_true_lands_normalised(self) -> None:
        parsed = parse_lenient(
            "{'network_interface': 'wlan0', 'antina_status': True, 'signal_strength': '-5'}"
        )
        assert normalise_device_report(parsed) == {
            "network_interface": "wlan0",
            "antenna_status": True,
            "signal_strength": -5,
        }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("AA:BB:CC:DD:EE:FF", "aabbccddeeff"),
        ("aa-bb-cc-dd-ee-ff", "aabbccddeeff"),
        ("AABB.CCDD.EEFF", "aabbccddeeff"),
        (" aa:bb ", "aabb"),
        ("", ""),
    ],
)
def test_hexify_mac(text: str, expected: str) -> None:
    assert hexify_mac(text) == expected


# --------------------------------------------------------------------------------------------------
# §7 envelopes
# --------------------------------------------------------------------------------------------------


class TestParseEnvelope:
    def test_python_send(self) -> None:
        payload = f'{{"message_id": "{UUID}-1700000000000", "reply_to": "{UUID}", "body": "hello"}}'
        assert parse_envelope(payload.encode()) == Envelope(
            message_id=f"{UUID}-1700000000000", reply_to=UUID, body="hello"
        )

    def test_python_reply(self) -> None:
        payload = (
            f'{{"message_id": "{PEER}-1700000000500", "response_id": "{UUID}-1700000000000", '
            f'"reply_to": "{PEER}", "body": "pong", "status": 1}}'
        )
        assert parse_envelope(payload) == Envelope(
            message_id=f"{PEER}-1700000000500",
            response_id=f"{UUID}-1700000000000",
            reply_to=PEER,
            status=1,
            body="pong",
        )

    def test_python_fail_with_unquoted_error_msg(self) -> None:
        payload = (
            f'{{"message_id": "{PEER}-1", "response_id": "17", "reply_to": "{PEER}", '
            '"body": {"error_code":404, "error_msg":file not found}, "status": 0}'
        )
        assert parse_envelope(payload) == Envelope(
            message_id=f"{PEER}-1",
            response_id="17",
            reply_to=PEER,
            status=0,
            body='{"error_code":404, "error_msg":file not found}',
        )

    def test_python_fail_that_is_valid_json(self) -> None:
        payload = (
            '{"message_id": "a", "response_id": "b", "reply_to": "c", '
            '"body": {"error_code":1, "error_msg":"bad"}, "status": 0}'
        )
        envelope = parse_envelope(payload)
        assert envelope.body == '{"error_code":1,"error_msg":"bad"}'
        assert envelope.status == 0

    def test_c_send_with_unescaped_quotes_in_body(self) -> None:
        payload = f'{{"message_id": "12", "reply_to": "{UUID}", "body": "he said "hi", ok"}}'
        assert parse_envelope(payload) == Envelope(message_id="12", reply_to=UUID, body='he said "hi", ok')

    def test_c_reply_with_quotes_and_fake_fields_in_body(self) -> None:
        body = 'x "message_id": "999", "status": 7 "}'
        payload = (
            f'{{"message_id": "3", "response_id": "12", "reply_to": "{UUID}", "body": "{body}", "status": 1}}'
        )
        assert parse_envelope(payload) == Envelope(
            message_id="3", response_id="12", reply_to=UUID, status=1, body=body
        )

    def test_fields_quoted_inside_an_unescaped_body_are_not_read(self) -> None:
        payload = f'{{"message_id": "12", "reply_to": "{UUID}", "body": "fwd {{"response_id": "9"}}"}}'
        assert parse_envelope(payload) == Envelope(
            message_id="12", reply_to=UUID, body='fwd {"response_id": "9"}'
        )
        no_id = '{"reply_to": "x", "body": "{"message_id": "9", "status": 4}", "status": 1}'
        assert parse_envelope(no_id) == Envelope(
            reply_to="x", status=1, body='{"message_id": "9", "status": 4}'
        )

    def test_fields_on_the_unusual_side_of_the_body_are_still_found(self) -> None:
        payload = '{"body": "x"y", "status": 1, "message_id": "5"}'
        assert parse_envelope(payload) == Envelope(message_id="5", status=1, body='x"y')
        status_first = "{'status': 0, 'message_id': 7, 'body': 'a'b'}"
        assert parse_envelope(status_first) == Envelope(message_id="7", status=0, body="a'b")

    def test_js_extras_and_retained_fields(self) -> None:
        payload = json.dumps({"message_id": PEER, "reply_to": UUID, "body": "hi", "topic": PEER, "status": 1})
        assert parse_envelope(payload) == Envelope(message_id=PEER, reply_to=UUID, status=1, body="hi")

    def test_js_camel_case(self) -> None:
        payload = '{"messageId": "m1", "replyTo": "instamsg/clients/x/reply", "method": "GET"}'
        assert parse_envelope(payload) == Envelope(message_id="m1", reply_to="instamsg/clients/x/reply")

    def test_camel_case_in_the_scanner(self) -> None:
        payload = '{"messageId": 5, "responseId": "4", "body": "a"b"}'
        assert parse_envelope(payload) == Envelope(message_id="5", response_id="4", body='a"b')

    def test_json_numbers_become_text_and_bools_ints(self) -> None:
        envelope = parse_envelope('{"message_id": 17, "response_id": 3, "status": true, "body": [1]}')
        assert envelope == Envelope(message_id="17", response_id="3", status=1, body="[1]")

    def test_single_quotes_and_quoted_status_in_the_scanner(self) -> None:
        payload = "{'message_id': '5', 'reply_to': 'x', 'body': 'it's', 'status': '1'}"
        assert parse_envelope(payload) == Envelope(message_id="5", reply_to="x", status="1", body="it's")

    def test_body_without_an_end_is_none(self) -> None:
        envelope = parse_envelope('{"message_id": "5", "body": "never closed')
        assert envelope == Envelope(message_id="5")

    @pytest.mark.parametrize("payload", [b"", b"hello", b"\xff\xfe\x00", b"{", b'{"body": 5}', b"[1]"])
    def test_garbage_gives_empty_fields(self, payload: bytes) -> None:
        envelope = parse_envelope(payload)
        assert envelope.message_id is None and envelope.reply_to is None and envelope.status is None

    @settings(max_examples=200, deadline=None)
    @given(st.one_of(st.binary(max_size=300), st.text(max_size=300), SCANNER_ALPHABET))
    def test_never_raises(self, payload: bytes | str) -> None:
        assert isinstance(parse_envelope(payload), Envelope)


class TestBuildSendEnvelope:
    def test_byte_exact(self) -> None:
        # §15 item 24: {"message_id": "17", "reply_to": "<clientId>", "body": "…"}
        assert build_send_envelope(17, UUID, "hello") == (
            b'{"message_id": "17", "reply_to": "cbf7d550-7204-11e4-a2ad-543530e3bc65", "body": "hello"}'
        )

    def test_body_is_json_escaped_and_utf8(self) -> None:
        body = 'say "hi"\\ \n caf\u00e9 \u2603'
        payload = build_send_envelope("42", UUID, body)
        assert payload == (
            b'{"message_id": "42", "reply_to": "' + UUID.encode() + b'", "body": "say \\"hi\\"\\\\ \\n caf'
            b'\xc3\xa9 \xe2\x98\x83"}'
        )
        assert json.loads(payload)["body"] == body
        assert parse_envelope(payload) == Envelope(message_id="42", reply_to=UUID, body=body)

    def test_lone_surrogate_still_gives_valid_json(self) -> None:
        payload = build_send_envelope(1, UUID, "a\ud800b")
        assert json.loads(payload)["body"] == "a\ud800b"

    @pytest.mark.parametrize("message_id", [0, 65536, -1, True, "", "123456", "12a", " 1", "1.5"])
    def test_ids_outside_the_c_range_are_refused(self, message_id: Any) -> None:
        with pytest.raises(ValueError):
            build_send_envelope(message_id, UUID, "x")

    @pytest.mark.parametrize("message_id", [1, 65535, "1", "99999", "00017"])
    def test_ids_of_at_most_five_digits_are_accepted(self, message_id: int | str) -> None:
        assert json.loads(build_send_envelope(message_id, UUID, "x"))["message_id"] == str(message_id)

    @pytest.mark.parametrize("reply_to", ["", "a" * 50, 'a"b', "a\\b", "a\nb"])
    def test_reply_to_must_suit_c(self, reply_to: str) -> None:
        with pytest.raises(ValueError):
            build_send_envelope(1, reply_to, "x")


def test_safe_for_c_reader() -> None:
    assert safe_for_c_reader("plain text, caf\u00e9")
    assert not safe_for_c_reader('a"b')
    assert not safe_for_c_reader("a\\b")
    assert not safe_for_c_reader("a\nb")


class TestMessageIdCounter:
    def test_counts_from_one(self) -> None:
        counter = MessageIdCounter()
        assert [counter.next_id() for _ in range(3)] == [1, 2, 3]

    def test_wraps_to_one_after_65535(self) -> None:
        counter = MessageIdCounter(start=65534)
        assert [counter.next_id() for _ in range(4)] == [65534, 65535, 1, 2]

    def test_full_cycle_stays_within_five_digits(self) -> None:
        counter = MessageIdCounter()
        seen = {counter.next_id() for _ in range(65535)}
        assert seen == set(range(1, 65536))
        assert counter.next_id() == 1

    def test_instances_are_independent(self) -> None:
        first, second = MessageIdCounter(), MessageIdCounter()
        first.next_id()
        assert second.next_id() == 1

    @pytest.mark.parametrize("start", [0, 65536, True])
    def test_bad_start(self, start: int) -> None:
        with pytest.raises(ValueError):
            MessageIdCounter(start)


# --------------------------------------------------------------------------------------------------
# §8 configuration
# --------------------------------------------------------------------------------------------------


class TestConfigPush:
    def test_byte_exact_integer(self) -> None:
        assert config_push_payload("PING_REQ_INTERVAL", 180, "") == (
            b'{"key": "PING_REQ_INTERVAL", "type": "1", "val": "180", "desc": ""}',
            False,
        )

    def test_checklist_item_25(self) -> None:
        payload, warn = config_push_payload("PING_REQ_INTERVAL", 120, "Ping interval (seconds)")
        assert payload == (
            b'{"key": "PING_REQ_INTERVAL", "type": "1", "val": "120", "desc": "Ping interval (seconds)"}'
        )
        assert not warn

    @pytest.mark.parametrize(
        ("value", "type_text", "val"),
        [
            (True, "1", "1"),
            (False, "1", "0"),
            (-5, "1", "-5"),
            ("pool.ntp.org", "0", "pool.ntp.org"),
            ("", "0", ""),
            (1.5, "0", "1.5"),
            (2.0, "0", "2.0"),
            (None, "0", ""),
            ({"a": [1, 2]}, "0", '{"a":[1,2]}'),
            ([1, "x"], "0", '[1,"x"]'),
        ],
    )
    def test_type_rules(self, value: Any, type_text: str, val: str) -> None:
        payload, _ = config_push_payload("K", value)
        assert json.loads(payload) == {"key": "K", "type": type_text, "val": val, "desc": ""}
        assert payload.startswith(b'{"key": "K", "type": "' + type_text.encode() + b'", "val": "')

    def test_object_value_is_escaped_and_flagged(self) -> None:
        payload, warn = config_push_payload("GPIO_PINS_ORIENTATION", {"a": 1})
        assert payload == b'{"key": "GPIO_PINS_ORIENTATION", "type": "0", "val": "{\\"a\\":1}", "desc": ""}'
        assert warn

    @pytest.mark.parametrize(
        ("value", "desc"), [('say "x"', ""), ("C:\\tmp", ""), ("x", 'the "desc"'), ("line\nbreak", "")]
    )
    def test_values_c_misreads_are_pushed_escaped_with_a_warning(self, value: str, desc: str) -> None:
        payload, warn = config_push_payload("K", value, desc)
        assert warn
        assert json.loads(payload) == {"key": "K", "type": "0", "val": value, "desc": desc}

    def test_non_ascii_is_utf8_and_not_flagged(self) -> None:
        payload, warn = config_push_payload("NAME", "caf\u00e9")
        assert payload == b'{"key": "NAME", "type": "0", "val": "caf\xc3\xa9", "desc": ""}'
        assert not warn

    def test_bad_input(self) -> None:
        with pytest.raises(ValueError):
            config_push_payload("", 1)
        with pytest.raises(TypeError):
            config_push_payload("K", {1, 2})

    @pytest.mark.parametrize(
        ("left", "right"), [(True, "1"), (False, "0"), (120, "120"), (None, ""), ({"a": 1}, '{"a":1}')]
    )
    def test_push_form_equalities(self, left: Any, right: str) -> None:
        assert push_form(left) == push_form(right) == right

    def test_push_form_differences_and_unknown_types(self) -> None:
        assert push_form(120) != push_form(121)
        assert push_form(1.0) == "1.0" != push_form(1)
        assert push_form({1, 2}) == "{1, 2}"


class TestConfigReport:
    def test_c_per_key_exact(self) -> None:
        payload = b"{'key' : 'PING_REQ_INTERVAL', 'type' : '1', 'val' : '180', 'desc' : 'Ping interval'}"
        assert parse_config_report(payload) == ConfigReport(
            form="per_key",
            values={"PING_REQ_INTERVAL": 180},
            types={"PING_REQ_INTERVAL": "1"},
            descriptions={"PING_REQ_INTERVAL": "Ping interval"},
        )

    def test_string_type_keeps_digits_as_text(self) -> None:
        report = parse_config_report("{'key' : 'CRON', 'type' : '0', 'val' : '180', 'desc' : ''}")
        assert report.values == {"CRON": "180"}

    def test_integer_type_that_does_not_parse_stays_text(self) -> None:
        report = parse_config_report("{'key' : 'X', 'type' : '1', 'val' : 'abc', 'desc' : ''}")
        assert report.values == {"X": "abc"}

    def test_apostrophe_in_desc(self) -> None:
        report = parse_config_report("{'key' : 'SSL_ENABLED', 'type' : '1', 'val' : '0', 'desc' : 'Don't'}")
        assert report.values == {"SSL_ENABLED": 0}
        assert report.descriptions == {"SSL_ENABLED": "Don't"}

    @pytest.mark.parametrize("value", [120, True, "pool.ntp.org", 'with "quote"'])
    def test_echo_of_a_push_reads_back_in_push_form(self, value: Any) -> None:
        payload, _ = config_push_payload("K", value, "d")
        report = parse_config_report(payload)
        assert report.form == "per_key"
        assert push_form(report.values["K"]) == push_form(value)
        assert report.descriptions == {"K": "d"}

    def test_python_whole_object(self) -> None:
        payload = b'{"interval": 5, "nested": {"a": [1]}, "debug": true, "instamsg_version": "1.0"}'
        assert parse_config_report(payload) == ConfigReport(
            form="whole_object", values={"interval": 5, "nested": {"a": [1]}, "debug": True}
        )

    def test_telit_repr_whole_object(self) -> None:
        report = parse_config_report("{'interval': 5, 'enabled': True, 'instamsg_version': '1.0'}")
        assert report == ConfigReport(form="whole_object", values={"interval": 5, "enabled": True})

    def test_object_with_a_key_named_key_and_more_is_whole_object(self) -> None:
        report = parse_config_report('{"key": "a", "val": "b", "other": 1}')
        assert report.form == "whole_object"
        assert report.values == {"key": "a", "val": "b", "other": 1}

    @pytest.mark.parametrize("payload", [b"", b"garbage", b"[1, 2]", b"\xff"])
    def test_unparsed(self, payload: bytes) -> None:
        assert parse_config_report(payload) == ConfigReport(form="unparsed")

    @settings(max_examples=200, deadline=None)
    @given(st.one_of(st.binary(max_size=200), SCANNER_ALPHABET))
    def test_never_raises(self, payload: bytes | str) -> None:
        assert isinstance(parse_config_report(payload), ConfigReport)


# --------------------------------------------------------------------------------------------------
# §9 logging
# --------------------------------------------------------------------------------------------------


class TestLogging:
    def test_enable_and_disable_byte_exact(self) -> None:
        assert logging_command_payload("app-7", True) == b'{"client_id": "app-7", "logging": "1"}'
        assert logging_command_payload("app-7", False) == b'{"client_id": "app-7", "logging": "0"}'

    @pytest.mark.parametrize("watcher_id", ["", 'a"b', "a\\b", "a\nb"])
    def test_bad_watcher(self, watcher_id: str) -> None:
        with pytest.raises(ValueError):
            logging_command_payload(watcher_id, True)

    @pytest.mark.parametrize(
        ("line", "level", "message"),
        [
            (
                b"[2024-01-01 10:00:00,123] ERROR in main:42: boom",
                "ERROR",
                "[2024-01-01 10:00:00,123] ERROR in main:42: boom",
            ),
            (
                "[2024-01-01 10:00:00,123] WARNING in x:1: w\n",
                "WARN",
                "[2024-01-01 10:00:00,123] WARNING in x:1: w",
            ),
            ("critical: disk gone", "FATAL", "critical: disk gone"),
            ("[debug] value=3\r\n\r\n", "DEBUG", "[debug] value=3"),
            (b"Socket connected to server.\r\n", "INFO", "Socket connected to server."),
            ("fatal|x", "FATAL", "fatal|x"),
            ("INFO then ERROR", "INFO", "INFO then ERROR"),
            ("errors are not levels", "INFO", "errors are not levels"),
            ("MY_ERROR is one word", "INFO", "MY_ERROR is one word"),
            ("", "INFO", ""),
            (b"\xff warn \xfe", "WARN", "\ufffd warn \ufffd"),
        ],
    )
    def test_parse_log_line(self, line: bytes | str, level: str, message: str) -> None:
        assert parse_log_line(line) == (level, message)

    def test_level_after_64_characters_is_ignored(self) -> None:
        line = "x" * 60 + " ok error here"
        assert parse_log_line(line) == ("INFO", line)

    def test_word_cut_by_the_window_does_not_count(self) -> None:
        inside = "x" * 58 + " ERROR later"  # "ERROR" ends exactly at character 64
        cut = "x" * 58 + " ERRORS later"  # the window holds "ERROR" of "ERRORS"
        assert len(inside.split(" later")[0]) == 64
        assert parse_log_line(inside)[0] == "ERROR"
        assert parse_log_line(cut)[0] == "INFO"

    def test_only_trailing_line_breaks_are_removed(self) -> None:
        assert parse_log_line("\r\n  INFO x  \r\n") == ("INFO", "\r\n  INFO x  ")

    @settings(max_examples=200, deadline=None)
    @given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
    def test_never_raises(self, payload: bytes | str) -> None:
        level, message = parse_log_line(payload)
        assert level in {"DEBUG", "INFO", "WARN", "ERROR", "FATAL"}
        assert not message.endswith(("\r", "\n"))


# --------------------------------------------------------------------------------------------------
# §5.7 SMS
# --------------------------------------------------------------------------------------------------

SMS_PARAMS = {
    "provisioning_id": "356938035643809",
    "provisioning_key": "KEY01a",
    "gsm_msisdn": "9876543210",
    "gsm_apn": "internet",
    "gsm_username": "",
    "gsm_password": "",
    "gsm_sim_pin": "",
    "gsm_send_sms": "1",
    "gsm_isd_code": "+91",
}


class TestSms:
    def test_spec_example_byte_exact(self) -> None:
        assert provisioning_sms_text(SMS_PARAMS, 1700000000) == (
            '("time":"1700000000","sg_apn":"internet","sg_user":"","sg_pass":"","sg_pin":"",'
            '"prov_pin":"KEY01a","sg_mode":"")'
        )

    def test_missing_and_null_values_are_empty_and_numbers_are_text(self) -> None:
        text = provisioning_sms_text({"provisioning_key": "KEY01a", "gsm_sim_pin": 1234, "gsm_apn": None}, 5)
        assert text == (
            '("time":"5","sg_apn":"","sg_user":"","sg_pass":"","sg_pin":"1234","prov_pin":"KEY01a","sg_mode":"")'
        )

    def test_c_locates_the_sms_by_its_apn_key(self) -> None:
        assert '"sg_apn":"' in provisioning_sms_text(SMS_PARAMS, 1)

    @pytest.mark.parametrize(
        ("params_key", "value", "field_name"),
        [
            ("gsm_apn", "my apn", "sg_apn"),
            ("gsm_password", 'pa"ss', "sg_pass"),
            ("gsm_username", "a,b", "sg_user"),
            ("provisioning_key", "KEY\t1", "prov_pin"),
            ("gsm_sim_pin", "12\n34", "sg_pin"),
            ("gsm_mode", "\u00a0", "sg_mode"),
            ("gsm_apn", ["x"], "sg_apn"),
        ],
    )
    def test_unsendable_values(self, params_key: str, value: Any, field_name: str) -> None:
        with pytest.raises(SmsNotSendable) as raised:
            provisioning_sms_text({**SMS_PARAMS, params_key: value}, 1700000000)
        assert raised.value.field_name == field_name
        assert isinstance(raised.value, ValueError)

    def test_bad_time(self) -> None:
        with pytest.raises(SmsNotSendable):
            provisioning_sms_text(SMS_PARAMS, -1)

    def test_masked_text(self) -> None:
        params = {**SMS_PARAMS, "gsm_password": "s3cret", "gsm_username": "user"}
        assert masked_sms_text(params, 1700000000) == (
            '("time":"1700000000","sg_apn":"internet","sg_user":"user","sg_pass":"********","sg_pin":"",'
            '"prov_pin":"********","sg_mode":"")'
        )
        assert "s3cret" not in masked_sms_text(params, 1) and "KEY01a" not in masked_sms_text(params, 1)

    def test_masked_text_describes_an_unsendable_sms(self) -> None:
        params = {**SMS_PARAMS, "gsm_apn": "bad apn", "gsm_password": "x y"}
        text = masked_sms_text(params, 1)
        assert '"sg_apn":"bad apn"' in text and '"sg_pass":"********"' in text


# --------------------------------------------------------------------------------------------------
# §10.1 file commands, §5.3 / §12.3 certificates
# --------------------------------------------------------------------------------------------------

REPLY_TOPIC = f"instamsg/clients/{UUID}/reply"


class TestFileCommands:
    def test_list_files_byte_exact(self) -> None:
        assert file_command_payload(1, REPLY_TOPIC, "GET") == (
            b'{"message_id": "1", "reply_to": "instamsg/clients/cbf7d550-7204-11e4-a2ad-543530e3bc65/reply", '
            b'"method": "GET"}'
        )

    def test_download_byte_exact(self) -> None:
        url = "http://platform.example.com/files/1325d1f4-0000-4000-8000-000000000000.report.csv"
        assert file_command_payload("77", REPLY_TOPIC, "POST", "report.csv", url) == (
            b'{"message_id": "77", "reply_to": "' + REPLY_TOPIC.encode() + b'", "method": "POST", '
            b'"filename": "report.csv", "url": "' + url.encode() + b'"}'
        )

    def test_upload_and_delete(self) -> None:
        assert json.loads(file_command_payload(2, REPLY_TOPIC, "GET", "a.log")) == {
            "message_id": "2",
            "reply_to": REPLY_TOPIC,
            "method": "GET",
            "filename": "a.log",
        }
        payload = file_command_payload(3, REPLY_TOPIC, "DELETE", "caf\u00e9.txt")
        assert payload.endswith(b'"method": "DELETE", "filename": "caf\xc3\xa9.txt"}')
        assert parse_envelope(payload) == Envelope(message_id="3", reply_to=REPLY_TOPIC)

    @pytest.mark.parametrize(
        "filename", ["", ".", "..", "a/b", 'a"b', "a\\b", "a\nb", "a\x00", "a\x7f", "a\x85"]
    )
    def test_bad_filenames(self, filename: str) -> None:
        with pytest.raises(ValueError):
            file_command_payload(1, REPLY_TOPIC, "DELETE", filename)

    @pytest.mark.parametrize(
        ("method", "filename", "url"),
        [
            ("get", None, None),
            ("PATCH", "a", None),
            ("POST", "a", None),
            ("PUT", None, "http://x/y"),
            ("GET", None, "http://x/y"),
            ("DELETE", None, None),
            ("DELETE", "a", "http://x/y"),
            ("POST", "a", 'http://x/"y'),
            ("POST", "a", ""),
        ],
    )
    def test_method_field_rules(self, method: str, filename: str | None, url: str | None) -> None:
        with pytest.raises(ValueError):
            file_command_payload(1, REPLY_TOPIC, method, filename, url)

    def test_bad_id_and_reply_to_and_size(self) -> None:
        with pytest.raises(ValueError):
            file_command_payload(0, REPLY_TOPIC, "GET")
        with pytest.raises(ValueError):
            file_command_payload(1, 'a"b', "GET")
        with pytest.raises(ValueError):
            file_command_payload(1, REPLY_TOPIC, "POST", "a", "http://x/" + "y" * 4000)


FAKE_CERTIFICATE = "-----BEGIN CERTIFICATE-----\nMIIBCERT\n-----END CERTIFICATE-----\n"
FAKE_KEY = "-----BEGIN PRIVATE KEY-----\nMIIEKEY\n-----END PRIVATE KEY-----\n"


class TestCertificates:
    def test_rc6_byte_exact(self) -> None:
        assert provisioning_rc6_payload(UUID, TOKEN, FAKE_CERTIFICATE, FAKE_KEY) == (
            b'{"client_id": "cbf7d550-7204-11e4-a2ad-543530e3bc65", '
            b'"auth_token": "0bd3a1c7817a4a1da772a89fcca48523", "secure_ssl_certificate": true, '
            b'"certificate": "-----BEGIN CERTIFICATE-----\\nMIIBCERT\\n-----END CERTIFICATE-----\\n", '
            b'"key": "-----BEGIN PRIVATE KEY-----\\nMIIEKEY\\n-----END PRIVATE KEY-----\\n"}'
        )

    def test_update_cert_byte_exact(self) -> None:
        assert certificate_push_payload(FAKE_CERTIFICATE.replace("\n", "\r\n"), FAKE_KEY) == (
            b'{"secure_ssl_certificate": true, '
            b'"certificate": "-----BEGIN CERTIFICATE-----\\nMIIBCERT\\n-----END CERTIFICATE-----\\n", '
            b'"key": "-----BEGIN PRIVATE KEY-----\\nMIIEKEY\\n-----END PRIVATE KEY-----\\n"}'
        )

    def test_real_rsa_2048_material(self) -> None:
        certificate_pem, key_pem = real_certificate_and_key()
        payload = provisioning_rc6_payload(UUID, TOKEN, certificate_pem, key_pem)
        assert b"\n" not in payload and b"\r" not in payload
        assert b'"secure_ssl_certificate": true, "certificate": "' in payload
        parsed = json.loads(payload)
        assert parsed == {
            "client_id": UUID,
            "auth_token": TOKEN,
            "secure_ssl_certificate": True,
            "certificate": certificate_pem,
            "key": key_pem,
        }
        for pem in (certificate_pem, key_pem):
            assert len(pem.replace("\n", "\\n")) < 1900
        assert len(payload) < 4000

    def test_field_of_1900_characters_is_refused(self) -> None:
        header, footer = "-----BEGIN PRIVATE KEY-----\n", "\n-----END PRIVATE KEY-----"
        filler = 1899 - len(header) - len(footer) - 2  # both newlines take two characters escaped
        assert provisioning_rc6_payload(UUID, TOKEN, FAKE_CERTIFICATE, header + "A" * filler + footer)
        with pytest.raises(ValueError, match="1900"):
            provisioning_rc6_payload(UUID, TOKEN, FAKE_CERTIFICATE, header + "A" * (filler + 1) + footer)

    @pytest.mark.parametrize(
        ("client_id", "token", "certificate", "key"),
        [
            (UUID.upper(), TOKEN, FAKE_CERTIFICATE, FAKE_KEY),
            ("not-a-uuid", TOKEN, FAKE_CERTIFICATE, FAKE_KEY),
            (UUID, "", FAKE_CERTIFICATE, FAKE_KEY),
            (UUID, 'to"ken', FAKE_CERTIFICATE, FAKE_KEY),
            (UUID, TOKEN, FAKE_KEY, FAKE_KEY),
            (UUID, TOKEN, FAKE_CERTIFICATE, FAKE_KEY.replace("PRIVATE KEY", "RSA PRIVATE KEY")),
            (UUID, TOKEN, FAKE_CERTIFICATE, FAKE_KEY.replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY")),
            (UUID, TOKEN, FAKE_CERTIFICATE.replace("MIIB", 'MI"B'), FAKE_KEY),
            (UUID, TOKEN, FAKE_CERTIFICATE.replace("MIIB", "MI\\B"), FAKE_KEY),
            (UUID, TOKEN, FAKE_CERTIFICATE.replace("MIIB", "MI\tB"), FAKE_KEY),
        ],
    )
    def test_refusals(self, client_id: str, token: str, certificate: str, key: str) -> None:
        with pytest.raises(ValueError):
            provisioning_rc6_payload(client_id, token, certificate, key)


_MATERIAL: list[tuple[str, str]] = []


def real_certificate_and_key() -> tuple[str, str]:
    """A self-signed RSA-2048 certificate (CN = the client UUID) and its PKCS#8 key, made once."""
    if not _MATERIAL:
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, UUID)])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "InstaMsg test CA")]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=365))
            .sign(key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        _MATERIAL.append((certificate.public_bytes(serialization.Encoding.PEM).decode(), key_pem))
    return _MATERIAL[0]
