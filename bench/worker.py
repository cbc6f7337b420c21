"""Where a worker's CPU goes under load, split between the server and the app: each configuration is started as
users run it and loaded by wrk at c16 with one-row requests; the CPU its processes used (from /proc) divided by the
requests answered is what one request costs the server in all. The same request path is then called in-process,
through our RSGI front with granian's part stood in for, in a process of its own (as `wine-api serve` sets it up:
multiprocess metrics, the JSON log line, the prediction log to SQLite). The difference is the server's own share:
granian's HTTP parsing and sockets, the event loop's scheduling, the system calls.

Run: `python bench/worker.py [--seconds 5]`; `bench/README.md` keeps a table."""
import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time

from wine_api.data import TUTORIAL_ROW

CONFIGS = {  # name -> (label, the bench's server name, path, body)
    "hello": ("hello-world Flask app, POST /api/", "hello", "/api/", [TUTORIAL_ROW]),
    "api": ("wine_api POST /api/, every hook on", "wine_api", "/api/", [TUTORIAL_ROW]),
    "api_nolog": ("wine_api POST /api/, prediction log off", "wine_api_nolog", "/api/", [TUTORIAL_ROW]),
    "predict": ("wine_api POST /predict, every hook on", "wine_api", "/predict", {"instances": [TUTORIAL_ROW]}),
}


def in_process(name:str, calls:int=20000) -> float:
    "Microseconds of CPU one request takes through the RSGI front and the app, in this process."
    label, server, path, body = CONFIGS[name]
    data = json.dumps(body).encode()
    if server == "hello":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from apps import hello_app
        app = hello_app()
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp()
        from wine_api.app import create_app
        from wine_api.ops import configure_logging
        global DEVNULL
        DEVNULL = open(os.devnull, "w")  # the log lines are written, as a server writes them, and dropped
        configure_logging(DEVNULL)
        log = "off" if server == "wine_api_nolog" else f"sqlite:///{tempfile.mkdtemp()}/log.sqlite"
        app = create_app({"PREDICTION_LOG": log})
    from wine_api.server import RsgiFront
    front = RsgiFront(app, script_name="")

    class Headers(list):
        def items(self): return list(self)

    class Scope:
        proto, http_version, scheme, method, query_string = "http", "1.1", "http", "POST", ""
        server, client = "127.0.0.1:5000", "127.0.0.1:40000"
        headers = Headers([("host", "127.0.0.1:5000"), ("content-type", "application/json"),
                           ("content-length", str(len(data)))])
    Scope.path = path

    class Protocol:
        async def __call__(self): return data
        def response_bytes(self, status, headers, body): self.status = status

    async def run(n):
        protocol, scope = Protocol(), Scope()
        for _ in range(n): await front.__rsgi__(scope, protocol)
        assert protocol.status == 200, protocol.status
    asyncio.run(run(2000))
    started = time.process_time()
    asyncio.run(run(calls))
    return (time.process_time() - started) / calls * 1e6


def under_load(name:str, seconds:int) -> tuple:
    "(req/s, microseconds of CPU per request over all the server's processes) under wrk c16."
    from bench import Server, wrk
    label, server_name, path, body = CONFIGS[name]
    server = Server(server_name)
    try:
        time.sleep(0.5)
        before, started = server.cpu_seconds(), time.perf_counter()
        result = wrk(server.url(path), json.dumps(body).encode(), 16, seconds)
        after = server.cpu_seconds()
    finally: server.stop()
    used = sum(after[pid] - before.get(pid, 0) for pid in after)
    return result["rps"], used / (result["rps"] * (time.perf_counter() - started)) * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--in-process", metavar="NAME", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.in_process: return print(in_process(args.in_process))
    print(f"one-row requests, c16, 2 workers; CPU per request from /proc over the server's processes\n")
    print(f"{'':44}{'req/s':>8}{'CPU us/req':>11}{'app us':>8}{'server us':>10}{'server %':>9}")
    for name, (label, *_) in CONFIGS.items():
        rps, cpu = under_load(name, args.seconds)
        app = float(subprocess.run([sys.executable, __file__, "--in-process", name], capture_output=True, text=True,
                                   check=True).stdout.split()[-1])
        print(f"{label:44}{rps:8.0f}{cpu:11.1f}{app:8.1f}{cpu - app:10.1f}{(cpu - app) / cpu:9.0%}")


if __name__ == "__main__":
    main()
