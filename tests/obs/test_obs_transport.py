"""The OBS filter's transport against a real m2fp-server process, without OBS.

The transport is driven like OBS drives it: one ``poll`` / ``can_send`` /
``send_frame`` / ``take_mask`` round per 30 fps frame, and the fallback policy is
asked what to draw each frame.  The server is killed (-9), restarted on the same
port, stopped and continued (SIGSTOP/SIGCONT); the times the issue asks for are
measured on the monotonic clock and printed (``-s`` shows them):

* no transport round ever takes longer than the frame budget;
* the server going away is noticed — and the fallback policy followed — within
  100 ms of a killed server (a stopped one is only silent: noticed after
  ``stall_s``), and the last mask is held ``hold_ms`` before passing through;
* masks resume within 1 s of the server listening again (or continuing).
"""
from __future__ import annotations

import gc
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import zmq

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "obs_plugin"))

import m2fp_protocol as proto  # noqa: E402
from m2fp_protocol import Header, MsgType, PixelFormat  # noqa: E402
from m2fp_server.evaluation.groundtruth import still  # noqa: E402
from m2fp_obs.policy import Action, Fallback, FallbackPolicy  # noqa: E402
from m2fp_obs.transport import MaskTransport, ReplyError, State, TransportSettings, parse_reply  # noqa: E402
from obs_harness import free_port  # noqa: E402
from obs_harness_server import ServerProcess  # noqa: E402

FPS = 30.0
BUDGET_MS = 1000.0 / FPS
HOLD_MS = 200.0
SIZE = (256, 144)  # what the filter sends for a 16:9 source to the selfie engine


@pytest.fixture(scope="module")
def frame() -> tuple[bytes, np.ndarray]:
    rgb, truth = still("astronaut", SIZE)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    return rgba.tobytes(), truth


@dataclass
class Tick:
    t: float
    call_ms: float  # time spent in the transport this frame
    alive: bool
    away_since: float | None
    action: Action
    new_mask: int  # frame id of a mask taken this frame, 0 = none


class Player:
    """Drives a transport at 30 fps as the OBS filter does and records every frame."""

    def __init__(self, tr: MaskTransport, pixels: bytes, policy: FallbackPolicy) -> None:
        self.tr, self.pixels, self.policy = tr, pixels, policy
        self.ticks: list[Tick] = []
        self.have_mask = False
        self.masks: list = []

    def step(self) -> Tick:
        tr = self.tr
        t0 = time.perf_counter()
        tr.poll()
        if tr.can_send():
            size = tr.send_size((1280, 720))
            assert size == SIZE
            tr.send_frame(self.pixels, SIZE[0], SIZE[1], SIZE[0] * 4, PixelFormat.RGBA)
        m = tr.take_mask()
        call_ms = (time.perf_counter() - t0) * 1000
        if m is not None:
            self.have_mask = True
            self.masks.append(m)
        now = time.monotonic()
        tick = Tick(now, call_ms, tr.server_alive, tr.away_since,
                    self.policy.decide(now, self.have_mask, tr.server_alive, tr.away_since),
                    m.frame_id if m else 0)
        self.ticks.append(tick)
        return tick

    def run(self, seconds: float, until=None) -> Tick | None:  # type: ignore[no-untyped-def]
        """Play for ``seconds`` or until ``until(tick)``; returns the tick that matched.

        The cyclic garbage collector is paused meanwhile: a full collection of this pytest process's heap
        (every test's objects so far) took 40-220 ms here and landed inside a timed round once (CI: 130 ms
        against the 33 ms budget).  That pause is the test process's; OBS's own interpreter holds the
        filter's few objects.  No collection first either: a time measured from before the call (a
        server killed) would hold it (CI: a killed server "noticed after 137 ms")."""
        gc.disable()
        try:
            return self._run(seconds, until)
        finally:
            gc.enable()

    def _run(self, seconds: float, until=None) -> Tick | None:  # type: ignore[no-untyped-def]
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < seconds:
            tick = self.step()
            if until is not None and until(tick):
                return tick
            n += 1
            delay = start + n / FPS - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        return None

    def max_call_ms(self) -> float:
        return max(t.call_ms for t in self.ticks)


def _iou(mask: bytes, truth: np.ndarray) -> float:
    a = np.frombuffer(mask, np.uint8).reshape(truth.shape) >= 128
    g = truth > 0
    return float((a & g).sum() / (a | g).sum())


def _streaming(srv: ServerProcess, frame, **settings) -> Player:  # type: ignore[no-untyped-def]
    tr = MaskTransport(TransportSettings(address=srv.address, **settings), {"keep": None, "smoothing": 0.0})
    player = Player(tr, frame[0], FallbackPolicy(HOLD_MS, Fallback.PASS))
    assert player.run(15.0, until=lambda t: tr.counts["masks"] >= 10), tr.status()
    return player


def test_streams_real_masks_without_blocking(frame):
    with ServerProcess() as srv:
        p = _streaming(srv, frame)
        p.run(2.0)
        st = p.tr.status()
        p.tr.close()
    assert st.state is State.READY and st.server_alive and st.engine == "selfie"
    assert st.masks >= 40 and st.lost == 0 and st.bad_replies == 0
    m = p.masks[-1]
    assert (m.width, m.height) == SIZE and len(m.data) == SIZE[0] * SIZE[1]
    assert _iou(m.data, frame[1]) > 0.85
    assert "connected · selfie" in st.line()
    print(f"\n[transport] {st.masks} masks, {st.mask_rate:.1f}/s, latency p50 {st.latency_ms:.1f} ms, "
          f"max transport time per frame {p.max_call_ms():.2f} ms")
    assert p.max_call_ms() < BUDGET_MS


def test_kill9_falls_back_within_100ms_and_reconnects_within_1s(frame):
    srv = ServerProcess().start()
    try:
        p = _streaming(srv, frame)
        t_kill = time.monotonic()
        srv.kill()
        passed = p.run(3.0, until=lambda t: t.action is Action.PASS)
        assert passed is not None, "never fell back to pass-through"
        away = p.tr.away_since
        assert away is not None
        detect_ms = (away - t_kill) * 1000
        held = [t for t in p.ticks if t.t > t_kill and t.action is Action.HOLD]
        pass_ms = (passed.t - t_kill) * 1000
        assert p.tr.state in (State.CONNECTING, State.HANDSHAKE)
        assert "server not reachable" in p.tr.status().line()

        srv.start()  # same port
        assert srv.listening_at is not None
        before = p.tr.counts["masks"]
        back = p.run(10.0, until=lambda t: t.new_mask and p.tr.counts["masks"] > before)
        assert back is not None, f"no mask after the restart: {p.tr.status()}"
        resume_ms = (back.t - srv.listening_at) * 1000
        p.run(0.3)
        assert p.ticks[-1].action is Action.COMPOSITE and p.tr.server_alive
        max_ms = p.max_call_ms()
        p.tr.close()
    finally:
        srv.stop()
    print(f"\n[kill -9] noticed after {detect_ms:.1f} ms, held the last mask for {len(held)} frames, pass-through "
          f"after {pass_ms:.0f} ms (hold {HOLD_MS:.0f} ms); masks again {resume_ms:.0f} ms after the server "
          f"listened; max transport time per frame {max_ms:.2f} ms")
    assert detect_ms < 100
    assert held, "the last mask was not held"
    assert HOLD_MS <= pass_ms - detect_ms < HOLD_MS + 100  # the hold runs from the moment it was noticed
    assert resume_ms < 1000
    assert max_ms < BUDGET_MS


def test_sigstop_is_noticed_and_sigcont_resumes_within_1s(frame):
    with ServerProcess() as srv:
        p = _streaming(srv, frame)
        stall_s = p.tr.settings.stall_s
        t_stop = time.monotonic()
        srv.pause()
        try:
            passed = p.run(4.0, until=lambda t: t.action is Action.PASS)
            assert passed is not None
            away = p.tr.away_since
            assert away is not None
            detect_ms = (away - t_stop) * 1000
            pass_ms = (passed.t - t_stop) * 1000
            p.run(1.5)  # long enough for the Lazy-Pirate reset (socket closed with LINGER 0, reopened)
            resets = p.tr.counts["reconnects"]
        finally:
            t_cont = time.monotonic()
            srv.resume()
        before = p.tr.counts["masks"]
        back = p.run(5.0, until=lambda t: t.new_mask and p.tr.counts["masks"] > before)
        assert back is not None, f"no mask after SIGCONT: {p.tr.status()}"
        resume_ms = (back.t - t_cont) * 1000
        max_ms = p.max_call_ms()
        p.tr.close()
    print(f"\n[SIGSTOP] noticed after {detect_ms:.0f} ms (stall_s {stall_s * 1000:.0f}), pass-through after "
          f"{pass_ms:.0f} ms, {resets} socket reset(s); masks {resume_ms:.0f} ms after SIGCONT; "
          f"max transport time per frame {max_ms:.2f} ms")
    # silence counts from the last reply, which came up to one frame before the stop
    assert stall_s * 1000 - BUDGET_MS - 10 <= detect_ms < stall_s * 1000 + 100
    assert detect_ms + HOLD_MS <= pass_ms < detect_ms + HOLD_MS + 100
    assert resets >= 1
    assert resume_ms < 1000
    assert max_ms < BUDGET_MS


def test_no_server_never_blocks_and_says_so(frame):
    tr = MaskTransport(TransportSettings(address=f"tcp://127.0.0.1:{free_port()}"))
    p = Player(tr, frame[0], FallbackPolicy(HOLD_MS, Fallback.HIDE))
    p.run(1.0)
    st = tr.status()
    tr.close()
    assert st.state is State.CONNECTING and not st.server_alive and st.sent == 0
    assert st.line().startswith("server not reachable")
    assert p.ticks[-1].action is Action.HIDE  # the user chose hiding, no mask ever came
    # a blocking call would take a whole reconnect interval or more; within one frame's time, a busy
    # machine's scheduling delays included, means none did (a 5 ms bound failed under a load of 6)
    assert p.max_call_ms() < BUDGET_MS


# --------------------------------------------------------------------------- bad replies
def _bogus_server() -> tuple[zmq.Socket, str]:
    ctx: zmq.Context = zmq.Context.instance()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    return router, f"tcp://127.0.0.1:{port}"


def _recv(router: zmq.Socket, tr: MaskTransport, mtype: MsgType, timeout_s: float = 5.0) -> tuple[bytes, Header]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        tr.poll()
        if router.poll(20):
            ident, *parts = router.recv_multipart()
            h = proto.unpack_header(parts[0])
            if h.type == mtype:
                return ident, h
    raise AssertionError(f"no {mtype.name} from the transport")


GARBAGE = [
    [b"short"],  # header too short
    [b"XXXX" + bytes(60)],  # bad magic
    [proto.pack_header(Header(MsgType.INFO)).replace(b"M2FP\x01", b"M2FP\x07", 1), b"{}"],  # bad version
    [proto.pack_header(Header(MsgType.INFO))[:5] + b"\x63" + proto.pack_header(Header(MsgType.INFO))[6:]],
    [proto.pack_header(Header(MsgType.INFO)), b"{not json"],
    [proto.pack_header(Header(MsgType.INFO)), b"[1, 2]"],  # JSON, not an object
    [proto.pack_header(Header(MsgType.FRAME, width=2, height=2, pixel_format=PixelFormat.RGBA)), bytes(16)],
    [proto.pack_header(Header(MsgType.MASK, frame_id=1, width=64, height=64, pixel_format=PixelFormat.GRAY8)),
     bytes(100)],  # payload does not fit the size
    [proto.pack_header(Header(MsgType.MASK, width=64, height=64, pixel_format=PixelFormat.RGBA)), bytes(64 * 256)],
    [proto.pack_header(Header(MsgType.MASK, width=0, height=9, pixel_format=PixelFormat.GRAY8)), b""],
    [proto.pack_header(Header(MsgType.DROPPED)), b"", b"third part"],
    # PEOPLE: overlapping boxes, a box beyond the mask, a torn record, no record, too many
    [proto.pack_header(Header(MsgType.PEOPLE, width=64, height=36)),
     proto.pack_people([proto.PersonBox(0, 0, 30, 36, 1, 1), proto.PersonBox(20, 0, 50, 36, 1, 1)])],
    [proto.pack_header(Header(MsgType.PEOPLE, width=64, height=36)),
     proto.pack_people([proto.PersonBox(0, 0, 65, 36, 1, 1)])],
    [proto.pack_header(Header(MsgType.PEOPLE, width=64, height=36)),
     proto.pack_people([proto.PersonBox(0, 0, 9, 9, 1, 1)])[:-1]],
    [proto.pack_header(Header(MsgType.PEOPLE, width=64, height=36)), b""],
    [proto.pack_header(Header(MsgType.PEOPLE, width=64, height=36)),
     proto.pack_people([proto.PersonBox(k * 10, 0, k * 10 + 5, 9, 1, 1) for k in range(5)])],
]


def test_garbage_replies_are_rejected_and_the_stream_goes_on():
    router, address = _bogus_server()
    tr = MaskTransport(TransportSettings(address=address), {"keep": None})
    try:
        ident, _ = _recv(router, tr, MsgType.HELLO)
        for parts in GARBAGE:
            router.send_multipart([ident, *parts])
        info = {"engine": {"name": "bogus"}, "classes": [], "preferred_input": [64, 36]}
        router.send_multipart([ident, *proto.encode_json(Header(MsgType.INFO), info)])
        ident, cfg = _recv(router, tr, MsgType.CONFIG)
        assert tr.counts["bad_replies"] == len(GARBAGE)
        assert tr.last_error.startswith("bad reply: ")
        router.send_multipart([ident, *proto.encode_json(Header(MsgType.CONFIG_ACK, frame_id=cfg.frame_id),
                                                         {"generation": 3, "config": {}})])
        deadline = time.monotonic() + 5
        while not tr.can_send() and time.monotonic() < deadline:
            tr.poll()
            time.sleep(0.01)
        fid = tr.send_frame(bytes(64 * 36 * 4), 64, 36, 256, captured=12.5)
        assert fid
        ident, fh = _recv(router, tr, MsgType.FRAME)
        assert (fh.mask_width, fh.mask_height) == (64, 36)
        assert fh.timestamp_us == 12_500_000  # the frame's own time (OBS's), not the moment it was sent
        mask = bytes(range(256)) * 9
        assert fh.flags & proto.Flags.WANT_PEOPLE  # the filter moves each person by their own motion...
        assert fh.flags & proto.Flags.WANT_TURNS  # ...and turns them
        people = [proto.PersonBox(2, 3, 30, 36, 120, -7, 300), proto.PersonBox(34, 0, 64, 30, -120, 0, -45)]
        router.send_multipart([ident, *proto.encode(Header(MsgType.PEOPLE, frame_id=fid, width=64, height=36,
                                                           flags=proto.Flags.WANT_TURNS),
                                                    proto.pack_people(people, turns=True))])
        router.send_multipart([ident, *proto.encode(Header(MsgType.MASK, frame_id=fid, width=64, height=36,
                                                           pixel_format=PixelFormat.GRAY8, generation=3,
                                                           motion_x=-300, motion_y=41), mask)])
        deadline = time.monotonic() + 5
        m = None
        while m is None and time.monotonic() < deadline:
            tr.poll()
            m = tr.take_mask()
            time.sleep(0.01)
        assert m is not None and m.data == mask and m.frame_id == fid
        assert m.motion == (-300, 41)  # for the frame sync to carry the mask on when it is shown late
        assert m.people == tuple(people)  # the PEOPLE just before it: each person moved by their own
        assert tr.counts["bad_replies"] == len(GARBAGE)
    finally:
        tr.close()
        router.close(0)


def test_parse_reply_rejects_every_garbage_kind_with_reply_error():
    for parts in GARBAGE:
        with pytest.raises(ReplyError):
            parse_reply(parts)
    h, payload = parse_reply(proto.encode(Header(MsgType.MASK, width=3, height=2, stride=5,
                                                 pixel_format=PixelFormat.GRAY8), b"abcXXdef"))
    assert payload == b"abcdef"  # padded rows repacked for the texture upload


def test_curve_keys_reach_the_server_and_wrong_ones_get_nothing(frame, selfie_engine, tmp_path):
    import zmq.auth

    from m2fp_server.security import generate_keys
    from m2fp_server.server import InferenceServer, ServerSettings

    keys = tmp_path / "keys"
    generate_keys(keys, "obs")
    generate_keys(tmp_path / "other", "intruder")
    server_public, _ = zmq.auth.load_certificate(str(keys / "server.key"))
    pub, sec = zmq.auth.load_certificate(str(keys / "clients" / "obs.key_secret"))
    bad_pub, bad_sec = zmq.auth.load_certificate(str(tmp_path / "other" / "clients" / "intruder.key_secret"))
    ctx = zmq.Context()
    srv = InferenceServer(selfie_engine, ServerSettings(address=f"tcp://0.0.0.0:{free_port()}",
                                                        curve_keys_dir=keys), context=ctx)
    srv.start()
    address = f"tcp://127.0.0.1:{srv.endpoint.rsplit(':', 1)[1]}"
    try:
        good = MaskTransport(TransportSettings(address=address, curve_server_key=server_public.decode(),
                                               curve_public_key=pub.decode(), curve_secret_key=sec.decode()))
        p = Player(good, frame[0], FallbackPolicy())
        assert p.run(10.0, until=lambda t: good.counts["masks"] >= 3), good.status()
        assert _iou(p.masks[-1].data, frame[1]) > 0.85
        good.close()
        time.sleep(0.3)  # let the authorised client's last frames arrive before counting
        received = srv.stats["received"]
        bad = MaskTransport(TransportSettings(address=address, curve_server_key=server_public.decode(),
                                              curve_public_key=bad_pub.decode(), curve_secret_key=bad_sec.decode()))
        Player(bad, frame[0], FallbackPolicy()).run(1.5)
        st = bad.status()
        bad.close()
        assert st.masks == 0 and st.state is not State.READY
        assert "CURVE" in st.last_error
        assert srv.stats["received"] == received
    finally:
        srv.stop()
        srv.join()
        ctx.term()
    with pytest.raises(ValueError, match="all three"):
        TransportSettings(curve_server_key=server_public.decode()).curve_keys()


# --------------------------------------------------------------------------- fuzzed replies
def _valid_replies() -> list[list[bytes]]:
    g8 = PixelFormat.GRAY8
    return [
        proto.encode_json(Header(MsgType.INFO), {"engine": {"name": "x"}, "classes": [], "preferred_input": [8, 8]}),
        proto.encode_json(Header(MsgType.CONFIG_ACK, frame_id=3), {"generation": 2, "config": {}}),
        proto.error_message(proto.ErrorCode.BAD_SIZE, "no", 4),
        proto.encode(Header(MsgType.MASK, frame_id=5, width=4, height=3, pixel_format=g8), bytes(range(12))),
        proto.encode(Header(MsgType.PARSING, frame_id=5, width=4, height=3, stride=6, pixel_format=g8), bytes(18)),
        proto.encode(Header(MsgType.DROPPED, frame_id=6)),
    ]


def test_parse_reply_fuzzed_never_raises_anything_but_reply_error():
    """3,000 mutations of valid replies (bit flips, cuts, extra bytes/parts): parsed or ReplyError."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    valid = _valid_replies()

    @st.composite
    def mutated(draw):  # type: ignore[no-untyped-def]
        parts = [bytearray(p) for p in draw(st.sampled_from(valid))]
        for _ in range(draw(st.integers(0, 4))):
            i = draw(st.integers(0, len(parts) - 1))
            op = draw(st.integers(0, 3))
            if op == 0 and parts[i]:
                j = draw(st.integers(0, len(parts[i]) - 1))
                parts[i][j] ^= 1 << draw(st.integers(0, 7))
            elif op == 1:
                parts[i] = parts[i][: draw(st.integers(0, len(parts[i])))]
            elif op == 2:
                parts[i] += draw(st.binary(max_size=16))
            else:
                parts.append(bytearray(draw(st.binary(max_size=8))))
        return [bytes(p) for p in parts]

    outcomes = {"ok": 0, "rejected": 0}

    @settings(max_examples=3000, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(mutated())
    def fuzz(parts: list[bytes]) -> None:
        try:
            header, payload = parse_reply(parts)
        except ReplyError as exc:
            assert str(exc)
            outcomes["rejected"] += 1
            return
        outcomes["ok"] += 1
        if header.type in (MsgType.MASK, MsgType.PARSING):
            assert len(payload) == header.width * header.height  # ready for the texture upload
        elif header.type != MsgType.DROPPED:
            assert isinstance(payload, dict)

    fuzz()
    assert outcomes["rejected"] > 500 and outcomes["ok"] > 100, outcomes


def test_server_restarted_with_another_engine_is_followed(frame):
    """Switching the server's engine while a client streams: the client re-reads INFO (engine, classes,
    input size) on reconnection and masks resume at the new engine's size."""
    srv = ServerProcess().start()
    port = srv.port
    try:
        p = _streaming(srv, frame)
        assert p.tr.status().engine == "selfie"
        srv.kill()
        srv2 = ServerProcess(engine="embedded", port=port).start()
        try:
            tr = p.tr
            deadline = time.monotonic() + 10
            got = None
            rgb, truth = still("astronaut", (640, 360))
            while time.monotonic() < deadline and got is None:
                t0 = time.perf_counter()
                tr.poll()
                if tr.can_send():
                    w, h = tr.send_size((1280, 720))
                    small = rgb if (w, h) == (640, 360) else None
                    if small is not None:
                        px = np.dstack([small, np.full(small.shape[:2], 255, np.uint8)]).tobytes()
                        tr.send_frame(px, w, h, w * 4, PixelFormat.RGBA)
                m = tr.take_mask()
                assert (time.perf_counter() - t0) * 1000 < BUDGET_MS
                if m is not None and (m.width, m.height) == (640, 360):
                    got = m
                time.sleep(1 / FPS)
            assert got is not None, f"no mask from the new engine: {tr.status()}"
            st = tr.status()
            assert st.engine == "embedded" and "connected · embedded" in st.line()
            assert tr.info["engine"]["name"] == "embedded"
            assert _iou(got.data, truth) > 0.85
            tr.close()
        finally:
            srv2.stop()
    finally:
        srv.stop()


def test_refused_at_the_connection_limit_says_so_and_gets_in_when_a_slot_frees(frame):
    """libzmq never redials after a refused handshake: the transport opens a fresh socket itself."""
    from conftest import admitted_dealer, running_server

    with running_server("--engine", "selfie", "--max-connections", "1") as (_proc, address):
        holder = admitted_dealer(address)  # takes the only slot
        tr = MaskTransport(TransportSettings(address=address, refused_retry_s=0.5))
        p = Player(tr, frame[0], FallbackPolicy())
        try:
            p.run(2.0)
            st = tr.status()
            assert st.masks == 0 and "connection limit" in st.last_error, st
            assert max(t.call_ms for t in p.ticks) < BUDGET_MS
            holder.close()
            t0 = time.monotonic()
            assert p.run(10.0, until=lambda t: tr.counts["masks"] >= 1), tr.status()
            print(f"in {time.monotonic() - t0:.2f} s after the slot freed")
            assert _iou(p.masks[-1].data, frame[1]) > 0.85
        finally:
            tr.close()
