"""The server over real ZeroMQ sockets with the real selfie model and real photos."""
from __future__ import annotations

import random
import signal
import struct
import time

import numpy as np
import pytest
import zmq

import m2fp_protocol as proto
from m2fp_protocol import ErrorCode, Header, MsgType, PixelFormat, fit_inside
from m2fp_server.client import MaskClient, ServerError
from m2fp_server.engines.base import Engine, EngineOutput, StreamContext
from m2fp_server.evaluation.groundtruth import Placement, still
from m2fp_server.postprocess.motion import FlowTracker
from m2fp_server.server import InferenceServer, ServerSettings


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return float((a & b).sum() / max(1, (a | b).sum()))


def rgba(rgb: np.ndarray) -> np.ndarray:
    return np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])


class DelayedEngine(Engine):
    """The real selfie model made slow (like M2FP) so queueing behaviour is observable."""

    name = "delayed-selfie"

    def __init__(self, inner: Engine, delay_s: float, fail_on_black: bool = False) -> None:
        self.inner, self.delay_s, self.fail_on_black = inner, delay_s, fail_on_black
        self.calls = 0

    @property
    def classes(self):  # type: ignore[no-untyped-def]
        return self.inner.classes

    def infer(self, rgb: np.ndarray, stream: StreamContext | None = None,
              motion: FlowTracker | None = None) -> EngineOutput:
        self.calls += 1
        if self.fail_on_black and rgb.max() == 0:
            raise RuntimeError("cannot segment a black frame")
        time.sleep(self.delay_s)
        return self.inner.infer(rgb, stream)


@pytest.fixture()
def slow_server(selfie_engine):  # type: ignore[no-untyped-def]
    eng = DelayedEngine(selfie_engine, 0.05, fail_on_black=True)
    srv = InferenceServer(eng, ServerSettings(address="tcp://127.0.0.1:*", max_frame_bytes=2_000_000))
    srv.start()
    yield srv
    srv.stop()
    srv.join()


@pytest.mark.parametrize("name,placement", [
    ("astronaut", Placement(cx=0.5, bottom=1.0, height=0.95)),
    ("grace_hopper", Placement(cx=0.4, bottom=1.0, height=0.85, angle=4.0)),
])
def test_photo_of_a_person_gets_a_correct_mask(client, name, placement):
    frame, truth = still(name, (640, 480), placement, seed=7)
    info = client.hello()
    assert info["engine"]["name"] == "selfie"
    assert [c["name"] for c in info["classes"]] == ["Background", "Person"]
    sw, sh = fit_inside((640, 480), tuple(info["preferred_input"]))
    small = np.ascontiguousarray(rgba(frame)[:: 480 // sh or 1][:sh, :sw]) if False else None
    import cv2
    small = rgba(cv2.resize(frame, (sw, sh), interpolation=cv2.INTER_AREA))
    mask, _ = client.mask(small, mask_size=(640, 480))
    assert mask.header.type == MsgType.MASK
    assert mask.array.shape == (480, 640)
    assert mask.header.infer_ms > 0
    score = iou(mask.array >= 128, truth)
    assert score >= 0.9, f"IoU {score:.3f}"
    # and the inverse selection keeps the background
    client.configure(keep=["Background"])
    inv, _ = client.mask(small, mask_size=(640, 480))
    assert iou(inv.array >= 128, 1 - truth) >= 0.9


def test_every_bad_message_gets_an_error_and_the_server_keeps_serving(client):
    sock = client.sock
    good = proto.pack_header(Header(MsgType.FRAME, frame_id=5, width=4, height=3, pixel_format=PixelFormat.RGBA))
    cases = {
        ErrorCode.MALFORMED: [b"short"],
        ErrorCode.BAD_MAGIC: [b"NOPE" + good[4:], bytes(48)],
        ErrorCode.BAD_VERSION: [good[:4] + b"\x07" + good[5:], bytes(48)],
        ErrorCode.BAD_TYPE: [good[:5] + b"\x06" + good[6:], bytes(12)],  # MASK is server->client only
        ErrorCode.BAD_SIZE: [good, bytes(47)],
        ErrorCode.BAD_CONFIG: proto.encode(Header(MsgType.CONFIG), b"{not json"),
    }
    for code, parts in cases.items():
        sock.send_multipart(parts)
        r = client.recv(5.0)
        assert r is not None and r.type == MsgType.ERROR, code
        assert r.json["code"] == code and r.json["message"], r.json
    # the id is echoed when the header parsed
    sock.send_multipart([good, bytes(47)])
    assert client.recv(5.0).header.frame_id == 5
    client.sock.send_multipart(proto.encode_json(Header(MsgType.CONFIG), {"keep": ["Wings"]}))
    r = client.recv(5.0)
    assert r.json["name"] == "BAD_CONFIG" and "Wings" in r.json["message"] and "Person" in r.json["message"]
    frame, truth = still("astronaut", (256, 192))
    mask, _ = client.mask(rgba(frame))
    assert iou(mask.array >= 128, truth) > 0.85


def test_oversize_frame_gets_too_large_and_absurd_message_is_cut_by_libzmq(slow_server):
    with MaskClient(slow_server.endpoint, timeout_s=5) as c:
        w, h = 800, 800  # 2.56 MB > 2 MB limit, < hard limit
        c.send_frame(np.zeros((h, w, 4), np.uint8), frame_id=1)
        r = c.recv(5.0)
        assert r.type == MsgType.ERROR and r.json["name"] == "TOO_LARGE"
    with MaskClient(slow_server.endpoint, timeout_s=5) as c:  # beyond ZMQ_MAXMSGSIZE: peer dropped
        c.send_frame(np.zeros((1600, 1600, 4), np.uint8), frame_id=2)
        assert c.recv(1.0) is None
    with MaskClient(slow_server.endpoint, timeout_s=5) as c:  # and the server is fine
        assert c.hello()["engine"]["name"] == "delayed-selfie"


def test_latest_frame_wins_under_a_burst(slow_server):
    frame, _ = still("astronaut", (256, 192))
    with MaskClient(slow_server.endpoint, timeout_s=5) as c:
        c.hello()
        n = 30
        for i in range(1, n + 1):
            c.send_frame(rgba(frame), frame_id=i)
        answers: dict[int, MsgType] = {}
        deadline = time.monotonic() + 10
        while len(answers) < n and time.monotonic() < deadline:
            r = c.recv(2.0)
            if r is not None:
                assert r.header.frame_id not in answers, "a frame was answered twice"
                answers[r.header.frame_id] = r.type
    assert len(answers) == n, "every frame is answered exactly once (MASK or DROPPED)"
    masks = sorted(i for i, t in answers.items() if t == MsgType.MASK)
    assert set(answers.values()) <= {MsgType.MASK, MsgType.DROPPED}
    assert masks[-1] == n, "the newest frame is always processed"
    assert len(masks) <= 4, f"stale frames were processed: {masks}"


def test_two_clients_are_served_fairly(slow_server):
    frame, truth = still("grace_hopper", (256, 192))
    counts = []
    clients = [MaskClient(slow_server.endpoint, timeout_s=5) for _ in range(2)]
    try:
        for c in clients:
            c.hello()
        got = [0, 0]
        fid = [0, 0]
        inflight = [0, 0]
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            for k, c in enumerate(clients):  # each streams with up to 2 frames in flight
                while inflight[k] < 2:
                    fid[k] += 1
                    c.send_frame(rgba(frame), frame_id=fid[k])
                    inflight[k] += 1
                r = c.recv(0.005)
                if r is not None:
                    inflight[k] -= 1
                    if r.type == MsgType.MASK:
                        got[k] += 1
                        assert iou(r.array >= 128, truth) > 0.85
        counts = got
    finally:
        for c in clients:
            c.close()
    assert min(counts) > 5
    assert min(counts) / max(counts) > 0.7, counts


def test_parsing_reply_and_generation_echo(client):
    frame, truth = still("astronaut", (256, 192))
    ack = client.configure(smoothing=0.0, soft=False)
    assert ack["generation"] >= 1 and ack["config"]["soft"] is False
    mask, parsing = client.mask(rgba(frame), want_parsing=True)
    assert mask.header.generation == ack["generation"]
    assert set(np.unique(mask.array)) <= {0, 255}  # hard threshold
    assert parsing is not None and parsing.header.type == MsgType.PARSING
    assert set(np.unique(parsing.array)) == {0, 1}
    assert iou(parsing.array == 1, truth) > 0.85


def test_engine_failure_is_an_error_reply_and_the_next_frame_works(slow_server):
    with MaskClient(slow_server.endpoint, timeout_s=5) as c:
        c.hello()
        with pytest.raises(ServerError) as exc:
            c.mask(np.zeros((64, 64, 4), np.uint8))
        assert exc.value.name == "ENGINE_FAILURE" and "black frame" in exc.value.message
        frame, truth = still("astronaut", (256, 192))
        mask, _ = c.mask(rgba(frame))
        assert iou(mask.array >= 128, truth) > 0.85


def _mutations(rng: random.Random, good: list[bytes]) -> list[bytes]:
    header, payload = bytearray(good[0]), bytearray(good[1])
    kind = rng.randrange(8)
    if kind == 0:  # flip random header bytes
        for _ in range(rng.randint(1, 6)):
            header[rng.randrange(len(header))] = rng.randrange(256)
        return [bytes(header), bytes(payload)]
    if kind == 1:  # truncate either part
        return [bytes(header[: rng.randrange(len(header) + 1)]), bytes(payload[: rng.randrange(len(payload) + 1)])]
    if kind == 2:  # random part count
        return [bytes(rng.randrange(256) for _ in range(rng.randrange(80))) for _ in range(rng.randint(1, 5))]
    if kind == 3:  # absurd sizes
        fields = list(struct.unpack("<4sBBHQqIIHHIIHHfffI", header))
        fields[6], fields[7] = rng.choice([0, 1, 2**31, 2**32 - 1]), rng.choice([0, 1, 9000, 2**32 - 1])
        fields[10] = rng.choice([0, 1, 2**32 - 1])
        return [struct.pack("<4sBBHQqIIHHIIHHfffI", *fields), bytes(payload)]
    if kind == 4:  # bad JSON config
        return [proto.pack_header(Header(MsgType.CONFIG)),
                rng.choice([b"{", b"[]", b'{"threshold": 9}', b"\xff\xfe", b'{"keep": 3}', b"null"])]
    if kind == 5:  # wrong pixel format / type values
        fields = list(struct.unpack("<4sBBHQqIIHHIIHHfffI", header))
        fields[8] = rng.randrange(0, 300)
        fields[2] = rng.randrange(0, 20)
        return [struct.pack("<4sBBHQqIIHHIIHHfffI", *fields), bytes(payload)]
    if kind == 6:  # payload length off by a little
        return [bytes(header), bytes(payload) + bytes(rng.randint(1, 9))]
    return [bytes(header)]  # header only


def test_fuzzed_messages_never_stop_the_server(server):
    rng = random.Random(1234)
    frame, truth = still("astronaut", (64, 48))
    good = proto.encode(Header(MsgType.FRAME, frame_id=1, width=64, height=48, pixel_format=PixelFormat.RGBA),
                        rgba(frame).tobytes())
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(server.endpoint)
    sent = replies = 0
    try:
        for _ in range(1200):
            sock.send_multipart(_mutations(rng, good))
            sent += 1
            while sock.poll(0):
                sock.recv_multipart()
                replies += 1
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and sock.poll(300):
            sock.recv_multipart()
            replies += 1
    finally:
        sock.close()
    assert server.stats["received"] >= sent
    assert replies >= sent * 0.5  # nearly everything gets an ERROR (or a MASK when a mutation was harmless)
    with MaskClient(server.endpoint, timeout_s=5) as c:
        mask, _ = c.mask(rgba(frame))
        assert iou(mask.array >= 128, truth) > 0.8


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_server_process_shuts_down_cleanly_on_signal(server_process, sig):
    proc, address = server_process
    with MaskClient(address, timeout_s=5) as c:
        c.hello()
    proc.send_signal(sig)
    assert proc.wait(10) == 0
    out = proc.stdout.read().decode()
    assert "shutting down" in out and "server stopped" in out


def test_config_during_processing_takes_effect_at_the_next_frame(slow_server):
    """A CONFIG arriving while the worker runs this client's frame never changes that frame mid-way."""
    frame, truth = still("astronaut", (256, 192))
    with MaskClient(slow_server.endpoint, timeout_s=5) as c:
        c.hello()
        fid = c.send_frame(rgba(frame))
        time.sleep(0.01)  # the worker is now inside the 50 ms engine call for this frame
        c.sock.send_multipart(proto.encode_json(Header(MsgType.CONFIG), {"keep": ["Background"]}))
        got = {}
        while len(got) < 2:  # the ACK comes at once, the MASK when the engine is done
            r = c.recv(5.0)
            assert r is not None
            got[r.type] = r
        first, ack = got[MsgType.MASK], got[MsgType.CONFIG_ACK]
        assert first.header.frame_id == fid
        assert first.header.generation < ack.json["generation"]
        assert iou(first.array >= 128, truth) > 0.85  # made entirely with the old settings
        second, _ = c.mask(rgba(frame))
        assert second.header.generation == ack.json["generation"]
        assert iou(second.array >= 128, 1 - truth) > 0.85  # and the next frame with the new ones
