"""What ``guard serve`` adds in front of a model server: latency against straight to the upstream, detectors off
and on; throughput, time to first token and memory with many concurrent streaming clients.

    nice -n 19 python benchmarks/gateway_overhead.py [-n 200] [--clients 64] [--streams-each 4]

The upstream is ``guard serve --model`` serving a tiny local chat model (2-layer GPT-2, random weights): a real
OpenAI-compatible server whose own cost is the same on every path. Two gateways run in front of it: ``off``,
whose policy runs no detector, and ``on``, which scores the prompt and the output with VADER sentiment (and holds
a stream back 8 pieces at a time while it checks). Both sign and log every answer. Latency requests go one at a
time, rotating direct → off → on with the same seed, so each path generates the same tokens and machine load
hits all three alike. The detectors' own time is measured in this process on the same texts, so the gateway's
own share is (on − direct) − detectors. CPU seconds per request, read from each server process, do not depend on
how loaded the machine is. Streaming runs ``--clients`` concurrent clients, each making ``--streams-each`` streams.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CLI = [sys.executable, "-c", "import sys; sys.argv[0] = 'guard'; from guard.cli import main; main()"]
MODEL = "tiny-chat"
PROMPT = "Tell me about the lighthouses on this coast, please."
DETECTORS_ON = """name: bench-on
stages:
  prompt:
    - detector: sentiment
      thresholds: {negative: 0.9}
      action: block
  output:
    - detector: sentiment
      thresholds: {negative: 0.99}
      action: flag
"""
DETECTORS_OFF = "name: bench-off\n"
UPSTREAM = "name: bench-upstream\nwatermark: {text: {enabled: false}}\n"


class Server:
    """``guard serve ARGS`` in its own process, ready once it prints its address."""

    def __init__(self, name: str, args: list[str], home: Path) -> None:
        from guard.signing.keys import KeyStore

        KeyStore(home / "keys").init()
        env = {**os.environ, "GUARD_HOME": str(home), "PYTHONPATH": str(REPO)}
        self.name, self.lines, self.url = name, [], ""
        self.proc = subprocess.Popen([*CLI, *args], env=env, cwd=home, stderr=subprocess.PIPE, text=True)
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)
            if found := re.search(r"listening on (http://\S+)", line):
                self.url = found.group(1)
                self._ready.set()
        self._ready.set()

    def wait(self) -> "Server":
        if not self._ready.wait(300) or not self.url:
            raise SystemExit(f"{self.name} did not start:\n" + "".join(self.lines))
        return self

    def cpu(self) -> float:
        import psutil

        times = psutil.Process(self.proc.pid).cpu_times()
        return times.user + times.system

    def rss(self) -> int:
        import psutil

        return psutil.Process(self.proc.pid).memory_info().rss

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(120)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency(targets: dict[str, str], n: int) -> tuple[dict[str, list[float]], list[str]]:
    """Milliseconds per non-streamed chat completion on each path, and the texts the ``on`` gateway returned."""
    import httpx2

    times: dict[str, list[float]] = {name: [] for name in targets}
    texts: list[str] = []
    with httpx2.Client(timeout=120) as client:
        for i in range(n + 5):  # the first rounds warm up connections and caches, and are not counted
            for name, url in targets.items():
                body = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 8,
                        "seed": i}
                start = time.perf_counter()
                response = client.post(url + "/v1/chat/completions", json=body)
                elapsed = (time.perf_counter() - start) * 1000
                response.raise_for_status()
                if i >= 5:
                    times[name].append(elapsed)
                    if name == "on":
                        texts.append(response.json()["choices"][0]["message"]["content"])
    return times, texts


def detector_ms(texts: list[str]) -> list[float]:
    """The ``on`` policy's detectors on the prompt and on each output, in this process: their own time."""
    from guard.pipeline.checker import Checker
    from guard.policy import parse

    policy, checker = parse(DETECTORS_ON), Checker()
    checker.check("prompt", policy.stages.prompt, [PROMPT])  # build the detectors first
    out = []
    for text in texts:
        start = time.perf_counter()
        checker.check("prompt", policy.stages.prompt, [PROMPT])
        checker.check("output", policy.stages.output, [text])
        out.append((time.perf_counter() - start) * 1000)
    return out


async def streaming(url: str, clients: int, each: int, server: Server | None) -> dict[str, float]:
    """``clients`` concurrent streaming clients, ``each`` streams apiece: streams/s, pieces/s, time to first
    piece, and (for a gateway) its resident memory before and at its peak."""
    import httpx2

    first_ms: list[float] = []
    pieces = 0
    peak = server.rss() if server else 0
    base = peak
    running = True

    async def watch() -> None:
        nonlocal peak
        while running:
            peak = max(peak, server.rss())
            await asyncio.sleep(0.05)

    async def one(client: httpx2.AsyncClient, i: int) -> None:
        nonlocal pieces
        body = {"model": MODEL, "messages": [{"role": "user", "content": f"{PROMPT} ({i})"}], "max_tokens": 16,
                "stream": True, "seed": i}
        start = time.perf_counter()
        seen_first = False
        async with client.stream("POST", url + "/v1/chat/completions", json=body) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if not line.startswith("data: {"):
                    continue
                chunk = json.loads(line[6:])
                if chunk.get("choices") and chunk["choices"][0].get("delta", {}).get("content"):
                    pieces += 1
                    if not seen_first:
                        first_ms.append((time.perf_counter() - start) * 1000)
                        seen_first = True

    async def client_loop(client: httpx2.AsyncClient, c: int) -> None:
        for k in range(each):
            await one(client, c * each + k)

    limits = httpx2.Limits(max_connections=clients * 2)
    async with httpx2.AsyncClient(timeout=300, limits=limits) as client:
        watcher = asyncio.create_task(watch()) if server else None
        cpu0 = server.cpu() if server else 0.0
        start = time.perf_counter()
        await asyncio.gather(*(client_loop(client, c) for c in range(clients)))
        wall = time.perf_counter() - start
        cpu = (server.cpu() - cpu0) if server else 0.0
        running = False
        if watcher:
            await watcher
    streams = clients * each
    return {"streams_per_s": streams / wall, "pieces_per_s": pieces / wall, "wall_s": wall,
            "first_piece_p50_ms": statistics.median(first_ms), "first_piece_p99_ms": _pct(first_ms, 0.99),
            "gateway_cpu_ms_per_stream": cpu * 1000 / streams, "rss_before_mb": base / 2**20,
            "rss_peak_mb": peak / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="latency requests per path")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--streams-each", type=int, default=4)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    from guard.demo.tiny_models import build_tiny_gpt2

    work = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    model = build_tiny_gpt2(work / "model", chat_template=True)
    homes = {name: work / name for name in ("upstream", "off", "on")}
    for name, policy in (("upstream", UPSTREAM), ("off", DETECTORS_OFF), ("on", DETECTORS_ON)):
        homes[name].mkdir()
        (homes[name] / "policy.yaml").write_text(policy)
    upstream = Server("upstream", ["serve", "--model", str(model), "--served-model-name", MODEL, "--device", "cpu",
                                   "--policy", "policy.yaml", "--port", "0", "--concurrency", "4"],
                      homes["upstream"]).wait()
    gateways = {name: Server(name, ["serve", "--upstream", upstream.url + "/v1", "--policy", "policy.yaml",
                                    "--port", "0"], homes[name]) for name in ("off", "on")}
    for server in gateways.values():
        server.wait()
    try:
        targets = {"direct": upstream.url, **{name: s.url for name, s in gateways.items()}}
        servers = {"direct": upstream, **gateways}
        cpu0 = {name: s.cpu() for name, s in servers.items()}
        times, texts = latency(targets, args.n)
        cpu = {name: (s.cpu() - cpu0[name]) * 1000 / (args.n + 5) for name, s in servers.items()}
        detectors = detector_ms(texts)
        stream_results = {name: asyncio.run(streaming(url, args.clients, args.streams_each,
                                                      gateways.get(name)))
                          for name, url in targets.items()}
    finally:
        for server in (*gateways.values(), upstream):
            server.stop()

    direct50 = statistics.median(times["direct"])
    results = {
        "load_average": os.getloadavg(), "cores": os.cpu_count(), "requests_per_path": args.n,
        "latency_ms": {name: {"p50": statistics.median(t), "p99": _pct(t, 0.99)} for name, t in times.items()},
        "added_p50_ms": {name: statistics.median(times[name]) - direct50 for name in ("off", "on")},
        "detectors_p50_ms": statistics.median(detectors),
        "gateway_cpu_ms_per_request": {name: cpu[name] for name in ("off", "on")},
        "upstream_cpu_ms_per_request": cpu["direct"] / 3,  # every request of every path reaches the upstream
        "streaming": stream_results,
    }
    results["added_beyond_detectors_p50_ms"] = results["added_p50_ms"]["on"] - results["detectors_p50_ms"]

    print(f"machine: {results['cores']} cores, load average {results['load_average'][0]:.1f} "
          f"(1 min) during the run")
    print(f"{'path':8} {'p50 ms':>8} {'p99 ms':>8} {'added p50':>10} {'gateway CPU ms/req':>19}")
    for name in targets:
        lat = results["latency_ms"][name]
        added = results["added_p50_ms"].get(name)
        print(f"{name:8} {lat['p50']:8.2f} {lat['p99']:8.2f} {'' if added is None else f'{added:+.2f}':>10} "
              f"{'' if name == 'direct' else f'{cpu[name]:.2f}':>19}")
    print(f"detectors' own time (prompt + output, p50): {results['detectors_p50_ms']:.2f} ms; "
          f"added beyond them, p50: {results['added_beyond_detectors_p50_ms']:+.2f} ms (target < 5 ms)")
    print(f"\n{args.clients} concurrent streaming clients x {args.streams_each} streams, 16 tokens each:")
    print(f"{'path':8} {'streams/s':>10} {'pieces/s':>9} {'1st piece p50':>14} {'p99':>8} {'CPU ms/stream':>14} "
          f"{'RSS MB before/peak':>19}")
    for name, r in stream_results.items():
        memory = "" if name == "direct" else f"{r['rss_before_mb']:.0f} / {r['rss_peak_mb']:.0f}"
        cpu_stream = "" if name == "direct" else f"{r['gateway_cpu_ms_per_stream']:.2f}"
        print(f"{name:8} {r['streams_per_s']:10.1f} {r['pieces_per_s']:9.1f} {r['first_piece_p50_ms']:14.1f} "
              f"{r['first_piece_p99_ms']:8.1f} {cpu_stream:>14} {memory:>19}")
    for name in ("off", "on"):
        ratio = stream_results[name]["streams_per_s"] / stream_results["direct"]["streams_per_s"]
        print(f"throughput {name} / direct: {ratio:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
