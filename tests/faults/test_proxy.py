"""ReplyProxy against the real session redis-server: lost replies, late replies, a Redis that stops answering; and
its RESP framer. The clients here never retry (no_retry_client), so each fault is seen exactly once."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import redis

from tests.conftest import RedisServer
from tests.faults.toolkit import KeyFiller, ReplyProxy, RespParser, no_retry_client

FRAMES = [
    b"+OK\r\n",
    b"-ERR wrong type\r\n",
    b":42\r\n",
    b"$5\r\nhello\r\n",
    b"$6\r\nhe\r\nlo\r\n",  # CRLF inside a bulk string is data
    b"$0\r\n\r\n",
    b"$-1\r\n",
    b"*-1\r\n",
    b"*0\r\n",
    b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
    b"*2\r\n*2\r\n:1\r\n:2\r\n*0\r\n",
    b"_\r\n",
    b"#t\r\n",
    b",3.14\r\n",
    b"(3492890328409238509324850943850943825024385\r\n",
    b"!21\r\nSYNTAX invalid syntax\r\n",
    b"=15\r\ntxt:Some string\r\n",
    b"%2\r\n+first\r\n:1\r\n+second\r\n*1\r\n_\r\n",
    b"~2\r\n+a\r\n+b\r\n",
    b">3\r\n+message\r\n+chan\r\n$2\r\nhi\r\n",
    b"|1\r\n+ttl\r\n:3600\r\n*2\r\n:1\r\n:2\r\n",  # an attribute, then the reply it describes
]


@pytest.mark.parametrize("frame", FRAMES, ids=lambda f: repr(f[:12]))
def test_the_parser_finds_one_frame_however_its_bytes_arrive(frame: bytes) -> None:
    whole, bytewise = RespParser(), RespParser()
    assert whole.feed(frame + frame) == [(frame[0], frame)] * 2
    assert [found for i in range(len(frame)) for found in bytewise.feed(frame[i : i + 1])] == [(frame[0], frame)]


def test_the_parser_reads_inline_commands_only_when_asked_to() -> None:
    assert RespParser(inline=True).feed(b"PING\r\n\r\n*1\r\n$4\r\nPING\r\n") == [
        (ord("P"), b"PING\r\n"),  # the empty line in between is no command: Redis ignores it
        (ord("*"), b"*1\r\n$4\r\nPING\r\n"),
    ]
    with pytest.raises(ValueError, match="not RESP"):
        RespParser().feed(b"PING\r\n")


@pytest.fixture
def through_proxy(reply_proxy: ReplyProxy) -> Iterator[redis.Redis]:
    client = no_retry_client(reply_proxy.url)
    client.ping()  # connected: the handshake (CLIENT SETINFO) is not "the next request" any more
    yield client
    client.close()


def test_a_dropped_reply_is_an_error_for_the_client_although_redis_ran_the_command(
    reply_proxy: ReplyProxy, through_proxy: redis.Redis, redis_client: redis.Redis
) -> None:
    reply_proxy.drop_next_reply()
    with pytest.raises((redis.ConnectionError, redis.TimeoutError)):
        through_proxy.set("k", "v")
    assert redis_client.get("k") == b"v"
    assert reply_proxy.dropped == 1
    assert through_proxy.get("k") == b"v"  # one-shot: the client reconnects and all is well


def test_a_matching_drop_lets_other_commands_pass_and_loses_only_that_reply(
    reply_proxy: ReplyProxy, through_proxy: redis.Redis, redis_client: redis.Redis
) -> None:
    incr = through_proxy.register_script("return redis.call('INCR', KEYS[1])")
    incr(keys=["n"])  # EVAL once, so the script is cached and the next call is an EVALSHA
    reply_proxy.drop_next_reply(matching=b"EVALSHA")
    assert through_proxy.set("before", "1")
    with pytest.raises((redis.ConnectionError, redis.TimeoutError)):
        incr(keys=["n"])
    assert redis_client.get("n") == b"2"
    assert through_proxy.get("before") == b"1"


def test_only_the_matching_reply_of_a_pipeline_is_lost_the_earlier_ones_arrive(
    reply_proxy: ReplyProxy, redis_client: redis.Redis
) -> None:
    # Given three pipelined commands in one write, the reply to the second to be dropped
    commands = [
        b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n",
        b"*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n",
        b"*1\r\n$4\r\nPING\r\n",
    ]
    reply_proxy.drop_next_reply(matching=b"INCR")
    with socket.create_connection(("127.0.0.1", reply_proxy.port), timeout=5) as raw:
        raw.sendall(b"".join(commands))
        received = b""
        while chunk := raw.recv(4096):  # When the proxy answers and closes
            received += chunk
    # Then exactly the first reply arrived, and Redis ran all three
    assert received == b"+OK\r\n"
    assert redis_client.get("a") == b"1"
    assert redis_client.get("n") == b"1"


def test_resp3_replies_are_framed_and_dropped_too(reply_proxy: ReplyProxy, redis_client: redis.Redis) -> None:
    client = no_retry_client(reply_proxy.url, protocol=3)
    client.hset("h", mapping={"a": "1", "b": "2"})  # connected with HELLO 3: replies are maps, sets, nulls...
    reply_proxy.drop_next_reply(matching=b"HGETALL")
    assert client.smembers("none") == set()
    with pytest.raises((redis.ConnectionError, redis.TimeoutError)):
        client.hgetall("h")
    assert client.hgetall("h") == {b"a": b"1", b"b": b"2"}
    assert client.zscore("none", "x") is None  # a RESP3 null
    client.close()


def test_heavy_pipelined_traffic_passes_through_unchanged(reply_proxy: ReplyProxy, redis_client: redis.Redis) -> None:
    client = no_retry_client(reply_proxy.url)
    KeyFiller(client, value_size=100).fill(20_000)  # 20 pipelines of 50 MSETs of 1,000 keys
    keys = client.keys("*")  # one 20,000-element array, arriving in many chunks
    assert len(keys) == 20_000
    assert client.mget(keys) == redis_client.mget(keys)
    client.close()


def test_a_delayed_reply_times_the_client_out_after_the_command_ran_once(
    reply_proxy: ReplyProxy, redis_client: redis.Redis
) -> None:
    client = no_retry_client(reply_proxy.url, socket_timeout=0.5)
    client.ping()
    reply_proxy.delay_replies(2)
    started = time.monotonic()
    with pytest.raises(redis.TimeoutError):
        client.incr("counter")
    assert time.monotonic() - started < 1.5
    assert redis_client.get("counter") == b"1"
    reply_proxy.reset()
    assert client.incr("counter") == 2
    client.close()


def test_a_blackholed_redis_answers_nothing_and_runs_nothing_until_it_is_lifted(
    reply_proxy: ReplyProxy, redis_client: redis.Redis
) -> None:
    early, late = (
        no_retry_client(reply_proxy.url, socket_timeout=0.3),
        no_retry_client(reply_proxy.url, socket_timeout=0.3),
    )
    early.ping()
    reply_proxy.blackhole(True)
    for client in (early, late):  # connected before, and connecting during the blackhole
        with pytest.raises(redis.TimeoutError):
            client.set("lost", "1")
    assert redis_client.get("lost") is None
    reply_proxy.blackhole(False)
    for client in (early, late):
        assert client.incr("found")
        client.close()
    assert redis_client.get("found") == b"2"


def test_stopping_the_proxy_closes_its_connections_and_threads(redis_url: str, redis_server: RedisServer) -> None:
    proxy = ReplyProxy(redis_server.port).start()
    client = no_retry_client(proxy.url, socket_timeout=1)
    client.ping()
    proxy.delay_replies(30)  # a reply held far longer than the stop may take
    with pytest.raises((redis.TimeoutError, redis.ConnectionError)):
        client.ping()
    started = time.monotonic()
    proxy.stop()
    assert time.monotonic() - started < 2
    with pytest.raises(redis.ConnectionError):
        client.ping()
    client.close()
