"""The one schema for client values (m2fp_protocol.validation): limits before json.loads, one row per field."""
from __future__ import annotations

from dataclasses import fields

import pytest
from m2fp_protocol import CIHP_CLASSES, CONFIG_SCHEMA, ErrorCode, ProtocolError, StreamConfig
from m2fp_protocol.validation import MAX_REQUEST_JSON_BYTES, class_index, parse_json
from m2fp_server.postprocess.classes import resolve_keep


def test_every_config_field_has_exactly_one_schema_row():
    assert [f.name for f in fields(StreamConfig)] == list(CONFIG_SCHEMA)


def test_defaults_pass_their_own_schema():
    cfg = StreamConfig().validate()
    assert cfg == StreamConfig()


@pytest.mark.parametrize("text, code", [
    (b"[" * 100_000, ErrorCode.TOO_LARGE),
    (b"[" * 17 + b"]" * 17, ErrorCode.BAD_CONFIG),
    (b'{"a": ' * 20 + b"1" + b"}" * 20, ErrorCode.BAD_CONFIG),
    (b'{"threshold": 1' + b"0" * 400 + b"}", ErrorCode.BAD_CONFIG),
    (b'{"threshold": NaN}', ErrorCode.BAD_CONFIG),
    (b'{"threshold": -Infinity}', ErrorCode.BAD_CONFIG),
    (b'{"threshold": 1e999}', ErrorCode.BAD_CONFIG),
    (b"\xff", ErrorCode.BAD_CONFIG),
    (b"{", ErrorCode.BAD_CONFIG),
])
def test_parse_json_refuses_with_a_code(text, code):
    with pytest.raises(ProtocolError) as err:
        parse_json(text, "CONFIG", ErrorCode.BAD_CONFIG, MAX_REQUEST_JSON_BYTES)
    assert err.value.code == code


def test_brackets_inside_strings_do_not_count_as_depth():
    assert parse_json(b'{"k": "' + b"[" * 500 + b'"}', "CONFIG", ErrorCode.BAD_CONFIG) == {"k": "[" * 500}


@pytest.mark.parametrize("key, expected", [("0", 0), ("19", 19), (" 7 ", 7), ("20", None), ("²", None), ("١", None),
                                           ("１", None), ("1" * 5000, None), ("-1", None), ("+1", None)])
def test_class_ids_are_ascii_decimal_below_the_class_count(key, expected):
    assert class_index(key, len(CIHP_CLASSES)) == expected


@pytest.mark.parametrize("keep", [["²"], ["1" * 5000], ["20"], ["１"]])
def test_resolve_keep_refuses_what_once_crashed(keep):
    with pytest.raises(ProtocolError) as err:
        resolve_keep(keep, CIHP_CLASSES)
    assert err.value.code == ErrorCode.BAD_CONFIG


@pytest.mark.parametrize("name, text, value", [
    ("soft", "Yes", True), ("soft", "off", False), ("threshold", " 0.25 ", 0.25),
    ("keep", "Hair, Face", ["Hair", "Face"]),
])
def test_form_text_goes_through_the_same_rows(name, text, value):
    assert CONFIG_SCHEMA[name].from_text(text) == value


@pytest.mark.parametrize("name, text", [("soft", "maybe"), ("threshold", "nan"), ("threshold", "1" * 400),
                                        ("threshold", "2"), ("keep", ",".join(["x"] * 100)), ("keep", "a" * 100)])
def test_form_text_out_of_range_is_refused(name, text):
    with pytest.raises(ProtocolError):
        CONFIG_SCHEMA[name].from_text(text)


def test_engine_options_are_flat_scalars_and_extend_without_schema_changes():
    cfg = StreamConfig.from_json({"engine_options": {"triton": "grpc://127.0.0.1:8001", "threads": 2, "fp16": True}})
    assert cfg.engine_options["triton"] == "grpc://127.0.0.1:8001"
    for bad in ({"a": {"b": 1}}, {"a": [1]}, {"a b": 1}, {f"k{i}": 1 for i in range(65)}, {"a": "x" * 2000}):
        with pytest.raises(ProtocolError):
            StreamConfig.from_json({"engine_options": bad})
