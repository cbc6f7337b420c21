"""A closed-loop load generator that records every request's outcome: used by bench/faults.py and by the tests.

Each of `connections` threads keeps one HTTP/1.1 keep-alive connection and POSTs the same body again and again until
stopped, recording when each request started and ended, its status, and the model version that answered
(`X-Model-Version`). A request that gets no answer (connection reset, timeout) is recorded with status 0 and the
error; the thread then opens a new connection and goes on.
"""
import http.client
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Outcome:
    started: float
    ended: float
    status: int        # 0 when no answer came
    version: str = None
    error: str = None


@dataclass
class Load:
    host: str
    port: int
    path: str
    body: bytes
    connections: int = 16
    headers: dict = field(default_factory=lambda: {"Content-Type": "application/json"})
    timeout: float = 10.0

    def __post_init__(self):
        self.outcomes, self._stop, self._threads = [], threading.Event(), []
        self._lock = threading.Lock()

    def _run(self):
        conn, mine = None, []
        while not self._stop.is_set():
            conn = conn or http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            started = time.monotonic()
            try:
                conn.request("POST", self.path, self.body, self.headers)
                response = conn.getresponse()
                response.read()
                mine.append(Outcome(started, time.monotonic(), response.status, response.getheader("X-Model-Version")))
            except (OSError, http.client.HTTPException) as e:
                mine.append(Outcome(started, time.monotonic(), 0, error=f"{type(e).__name__}: {e}"))
                conn.close()
                conn = None
        if conn: conn.close()
        with self._lock: self.outcomes += mine

    def start(self):
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(self.connections)]
        for t in self._threads: t.start()
        return self

    def stop(self) -> list:
        "Stop, wait for the threads, and return every outcome, in order of start."
        self._stop.set()
        for t in self._threads: t.join(timeout=self.timeout + 5)
        return sorted(self.outcomes, key=lambda o: o.started)


def failed(outcomes) -> list: return [o for o in outcomes if not 200 <= o.status < 300]
