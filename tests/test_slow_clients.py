"""Slow clients against a real `wine-api serve`: 200 connections that send their headers or body a byte at a time (or
promise more body than they send) for 60 s, while a normal client keeps asking. The normal client must be answered,
every time, well within a second; the server must hang up on the slow ones instead of waiting for them forever."""
import http.client
import json
import socket
import statistics
import threading
import time

from harness import LiveServer
from wine_api.data import TUTORIAL_ROW as ROW

BODY = json.dumps([ROW]).encode()
SLOW_CONNECTIONS, SECONDS, DRIP_INTERVAL = 200, 60, 2.0


def request_head(extra_length=0) -> bytes:
    return (f"POST /api/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(BODY) + extra_length}\r\n\r\n").encode()


def slow_client(port:int, how:str, stop:threading.Event, hangups:list):
    "Open a connection and dribble one request into it, a byte every DRIP_INTERVAL s; again when the server hangs up."
    whole, dripped = {"headers": (b"", request_head() + BODY), "body": (request_head(), BODY),
                      "short": (request_head(1000), BODY)}[how]
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                s.sendall(whole)
                for byte in dripped:
                    if stop.wait(DRIP_INTERVAL): return
                    s.sendall(bytes([byte]))
                while not stop.wait(DRIP_INTERVAL): s.sendall(b" ")  # "short": the promised rest never comes
        except OSError: hangups.append(how)  # the server closed it: reset or broken pipe


def normal_client(port:int, stop:threading.Event, outcomes:list):
    "One-row requests on a new connection each, 20 a second; (answered 200?, seconds) for each."
    while not stop.is_set():
        started = time.monotonic()
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("POST", "/api/", BODY, {"Content-Type": "application/json"})
            response = connection.getresponse()
            ok = response.status == 200 and json.loads(response.read()) == [2]
            connection.close()
        except OSError: ok = False
        outcomes.append((ok, time.monotonic() - started))
        stop.wait(0.05)


def test_200_slow_connections_for_60_s_do_not_slow_a_normal_client():
    server = LiveServer()
    stop, hangups, outcomes = threading.Event(), [], []
    slow = [threading.Thread(target=slow_client, args=(server.port, ("headers", "body", "short")[i % 3], stop, hangups),
                             daemon=True) for i in range(SLOW_CONNECTIONS)]
    try:
        for t in slow: t.start()
        time.sleep(3)  # every slow connection is open and dribbling
        normal = threading.Thread(target=normal_client, args=(server.port, stop, outcomes))
        normal.start()
        time.sleep(SECONDS)
        stop.set()
        normal.join()
    finally:
        stop.set()
        server.stop()
    latencies = sorted(seconds for ok, seconds in outcomes)
    print(f"\n{SLOW_CONNECTIONS} slow connections for {SECONDS} s: normal client {len(outcomes)} requests, "
          f"{sum(not ok for ok, _ in outcomes)} failed, p50 {statistics.median(latencies) * 1000:.1f} ms, "
          f"max {latencies[-1] * 1000:.1f} ms; server hung up on slow clients {len(hangups)} times "
          f"({', '.join(f'{how}: {hangups.count(how)}' for how in ('headers', 'body', 'short'))})")
    assert len(outcomes) > SECONDS * 10 and all(ok for ok, _ in outcomes)
    assert latencies[-1] < 1.0
    # headers are given up on after gunicorn's keepalive (5 s), bodies after BODY_TIMEOUT (10 s): none is awaited forever
    assert all(hangups.count(how) >= SLOW_CONNECTIONS // 3 for how in ("headers", "body", "short")), hangups[:5]
