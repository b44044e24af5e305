"""Structured hostile JSON for every HELLO and CONFIG field, >= 10,000 messages at a real server process.

The byte-level fuzzer (test_fuzz.py) never produced the values that once stopped the
server: huge integers, NaN and Infinity, Unicode digits, deep nesting, long strings,
wrong types.  This generator builds exactly those, field by field, and checks that
every message gets one answer (INFO, CONFIG_ACK or an ERROR with a known code,
never INTERNAL) and that the server stays up and serves a good frame afterwards.
"""
from __future__ import annotations

import json
import random

import zmq

import m2fp_protocol as proto
from m2fp_protocol import ErrorCode, Header, MsgType
from m2fp_server.cli.soak import rss_kb

from test_hostile_messages import assert_good_mask

N_MESSAGES = 10_000
SEED = 16

#: Every field a client may send, with a valid value to mix the hostile ones into.
CONFIG_FIELDS = {
    "keep": ["Person"], "threshold": 0.5, "soft": True, "smoothing": 0.3, "motion": True,
    "predict_frames": 2.0, "refine": False, "engine_options": {},
}
HELLO_FIELDS = {"client": "fuzz"}


def hostile_value(rng: random.Random, depth: int = 0) -> str:
    """One JSON value text (not always valid JSON on purpose: NaN, Infinity, 1e999 are Python's extensions)."""
    kind = rng.randrange(22)
    digits = rng.choice([20, 310, 400, 4301, 5000])
    if kind == 0:
        return "1" + "0" * digits  # huge int
    if kind == 1:
        return "-" + "9" * digits
    if kind == 2:
        return rng.choice(["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e-999", "-0.0"])
    if kind == 3:  # Unicode digits and other look-alikes, as strings
        s = rng.choice(["²", "١٢", "߁", "𝟏", "¹⁰", "١", "Ⅻ", "1\u0301", "0x1", " 1", "1 ", "+1", "-1", "01", "1_0",
                        "\u0000", "\ud800", "Background", "person", "PERSON", "bg", ""])
        return json.dumps(s) if s != "\ud800" else '"\\ud800"'
    if kind == 4:
        return json.dumps("1" * digits)
    if kind == 5:  # deep nesting, arrays or objects
        n = rng.choice([50, 500, 5000, 100_000])
        return ("[" * n + "]" * n) if rng.random() < 0.5 else ('{"a":' * n + "1" + "}" * n)
    if kind == 6:
        return "[" * rng.choice([33, 1000, 100_000])  # unterminated
    if kind == 7:
        return json.dumps("x" * rng.choice([65, 300, 5000, 20_000]))
    if kind == 8:
        return rng.choice(["true", "false", "null", "{}", "[]", '""', "0", "-1", "2", "0.5", "1.0000001"])
    if kind == 9:  # list of hostile things (keep-shaped)
        n = rng.choice([1, 2, 3, 100, 3000])
        return "[" + ",".join(hostile_value(rng, depth + 1) if depth < 2 else '"1"' for _ in range(min(n, 5))) \
            + (',"1"' * max(0, n - 5)) + "]"
    if kind == 10:  # object of hostile things (engine_options-shaped)
        n = rng.choice([1, 2, 40, 2000])
        items = [f'"k{i}":{hostile_value(rng, depth + 1) if depth < 2 and i < 4 else "1"}' for i in range(n)]
        return "{" + ",".join(items) + "}"
    if kind == 11:
        return rng.choice(['"\\u0000"', '"\\"', '"a\\', "'single'", "tru", "nul", "1.", ".5", "1e", "--1", "0x10"])
    if kind == 12:
        return str(rng.uniform(-1e308, 1e308))
    if kind == 13:
        return str(rng.choice([rng.random(), rng.randint(-5, 15), 2**53 + 1, 2**64, -(2**63)]))
    if kind == 14:
        return json.dumps(rng.choice(["Hair", "Face", "Person", "Background", "0", "1", "19", "20", "100"]))
    if kind == 15:
        return '{"keep": ' + hostile_value(rng, depth + 1) + "}" if depth < 2 else "{}"
    if kind == 16:
        return json.dumps([rng.choice(["0", "1", 1, 0, True, None, 1.5, "Person"]) for _ in range(rng.randint(0, 6))])
    if kind == 17:
        return '"' + "\\u00e9" * rng.choice([10, 4000]) + '"'
    if kind == 18:
        return json.dumps({"url": "http://" + "a" * rng.choice([10, 300, 3000])})
    if kind == 19:
        return json.dumps({"triton": "grpc://127.0.0.1:8001", "threads": rng.choice([1, 4, -1, 10**30])})
    if kind == 20:
        return rng.choice(["1" * 17, "12345678901234567890123", "1e308", "4.9e-324", "1.7976931348623157e309"])
    return json.dumps(rng.random())


def hostile_body(rng: random.Random, fields: dict) -> bytes:
    """A JSON object with some valid fields and at least one hostile one (or a hostile whole payload)."""
    r = rng.random()
    if r < 0.04:
        return hostile_value(rng).encode("utf-8", "surrogatepass")
    if r < 0.06:
        return rng.choice([b"", b"\xff\xfe{}", b"{\"keep\": [\"1\"]", b'{"a":1,"a":2}', b"{} {}", b" " * 20_000])
    body = {}
    for name, value in fields.items():
        if rng.random() < 0.3:
            body[name] = json.dumps(value)
    hostile = rng.sample(sorted(fields) + ["unknown_key", "__proto__", "é" * 10], k=rng.randint(1, 2))
    for name in hostile:
        body[name] = hostile_value(rng)
    text = "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in body.items()) + "}"
    return text.encode("utf-8", "surrogatepass")


def messages(n: int) -> list[list[bytes]]:
    rng = random.Random(SEED)
    out = []
    for i in range(n):
        t = MsgType.CONFIG if rng.random() < 0.8 else MsgType.HELLO
        body = hostile_body(rng, CONFIG_FIELDS if t == MsgType.CONFIG else HELLO_FIELDS)
        out.append([proto.pack_header(Header(t, frame_id=i + 1)), body])
    return out


def test_server_answers_10000_hostile_json_messages_and_stays_up(server_process):
    proc, address = server_process
    msgs = messages(N_MESSAGES)
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.connect(address)
    answers: dict[int, tuple[MsgType, int]] = {}
    rss = [rss_kb(proc.pid)]
    try:
        batch = 100  # pipelined; the server's receive queue never overflows
        for start in range(0, len(msgs), batch):
            for parts in msgs[start:start + batch]:
                sock.send_multipart(parts)
            while len(answers) < min(start + batch, len(msgs)):
                assert sock.poll(30_000), f"no answer after {len(answers)} messages (server exit code {proc.poll()})"
                reply = proto.decode(sock.recv_multipart(), accept=proto.CLIENT_ACCEPTS)
                code = proto.decode_json(reply).get("code", 0) if reply.header.type == MsgType.ERROR else 0
                answers[reply.header.frame_id] = (reply.header.type, code)
        rss.append(rss_kb(proc.pid))
    finally:
        sock.close()
    assert proc.poll() is None, "the server exited"
    assert sorted(answers) == list(range(1, N_MESSAGES + 1))  # exactly one answer each
    kinds = {(t.name, ErrorCode(c).name if c else "") for t, c in answers.values()}
    assert ("ERROR", "INTERNAL") not in kinds, kinds  # every one was refused by validation, not by luck
    assert kinds <= {("INFO", ""), ("CONFIG_ACK", ""), ("ERROR", "BAD_CONFIG"), ("ERROR", "TOO_LARGE"),
                     ("ERROR", "MALFORMED")}, kinds
    errors = sum(t == MsgType.ERROR for t, _ in answers.values())
    assert errors > N_MESSAGES // 2, errors
    assert_good_mask(address)
    assert (rss[-1] - rss[0]) / 1024 < 64, f"RSS grew {(rss[-1] - rss[0]) / 1024:.0f} MB"
