#!/usr/bin/env python3
"""Load test and benchmark of `vkllm serve` (Python standard library only; docs/serving.md).

Starts `vkllm serve` on a free loopback port (or uses --url), then for each concurrency level sends a fixed number
of streaming greedy completions with at most that many in flight.  Checks that every request completed with
max_tokens tokens (or ended by the model with finish_reason "stop") and that every greedy text equals the text of
the same prompt sent alone; reports aggregate generated tokens/s, time to first token and inter-token latency
(p50/p99) per level.  --shared-prefix N adds a run of N requests sharing a long system prompt (--prefix-concurrency
at a time), with and without the prefix cache (two servers): TTFT and the cache's hit rate from /metrics.
--disconnect N adds a run of N requests at the highest level of which every other one hangs up after a random
number of events: the others must still give their texts, and /metrics must show every KV page back in the pool
and the hung-up requests cancelled.  --replicas N starts the servers with N copies of the model (default: the
server's own choice).

  bench/serve_load.py --vkllm build/vkllm -m ../shared/models/stories260K.gguf --levels 1,4,16 --requests 32
"""
import argparse
import http.client
import json
import random
import selectors
import socket
import re
import subprocess
import sys
import threading
import time

PROMPTS = ["Once upon a time", "Lily and Tom", "The cat", "One day, a little boy named Tim", "The sun was",
           "Sue had a red ball", "Max", "In the forest there lived a big bear", "The dog ran", "Ben saw a bird",
           "A little fish swam in the sea", "Mom said", "The tree was tall", "Sam and Anna played",
           "It was a rainy day", "The girl had a doll"]


def start_server(args, parallel, extra=(), ctx=None):
    cmd = [args.vkllm, "serve", "-m", args.model, "--port", "0", "--parallel", str(parallel), "--ctx",
           str(ctx or args.ctx), *(["--replicas", str(args.replicas)] if args.replicas else []), *extra]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    while True:
        line = proc.stderr.readline()
        if not line:
            sys.exit("the server did not start: " + " ".join(cmd))
        m = re.search(r"http://([0-9.]+):(\d+)", line)
        if m:
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, m.group(1), int(m.group(2))


def get_metrics(host, port):
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    return {k: float(v) for k, v in (line.rsplit(" ", 1) for line in text.splitlines() if line and line[0] != "#")}


class Stream:
    """One streaming completion read by the event loop of run_level: raw socket, HTTP/1.1 chunked body, SSE."""

    def __init__(self, host, port, index, prompt, max_tokens, hang_up_after=None):
        self.index, self.prompt, self.hang_up_after, self.t0 = index, prompt, hang_up_after, time.monotonic()
        body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True}).encode()
        self.sock = socket.create_connection((host, port))
        self.sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        self.sock.setblocking(False)
        self.raw, self.body, self.headers_done, self.chunked = b"", b"", False, False
        self.text, self.events, self.finish, self.ttft, self.gaps, self.last = [], 0, None, None, [], None
        self.error, self.done = None, False

    def feed(self, data):
        if not data:  # the server closed the connection
            self.done = True
            if self.finish is None and self.error is None:
                self.error = "connection closed before the end of the stream"
            return
        self.raw += data
        if not self.headers_done:
            end = self.raw.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.raw = self.raw[:end].decode("latin-1"), self.raw[end + 4:]
            status = head.split(" ", 2)[1]
            if status != "200":
                self.error, self.done = f"HTTP {status}", True
                return
            self.chunked = "transfer-encoding: chunked" in head.lower()
            self.headers_done = True
        if self.chunked:  # de-chunk what is complete
            while True:
                eol = self.raw.find(b"\r\n")
                if eol < 0:
                    break
                size = int(self.raw[:eol].split(b";")[0], 16)
                if len(self.raw) < eol + 2 + size + 2:
                    break
                self.body += self.raw[eol + 2:eol + 2 + size]
                self.raw = self.raw[eol + 2 + size + 2:]
        else:
            self.body, self.raw = self.body + self.raw, b""
        while True:
            end = self.body.find(b"\n\n")
            if end < 0:
                return
            event, self.body = self.body[:end].decode(), self.body[end + 2:]
            for line in event.split("\n"):
                if line.startswith("data: "):
                    self.on_data(line[6:])

    def on_data(self, data):
        if data == "[DONE]":
            self.done = True
            return
        chunk = json.loads(data)
        choice = chunk["choices"][0]
        now = time.monotonic()
        if choice["text"]:
            if self.ttft is None:
                self.ttft = now - self.t0
            elif self.last is not None:
                self.gaps.append(now - self.last)
            self.last = now
            self.events += 1
            self.text.append(choice["text"])
            if self.hang_up_after is not None and self.events >= self.hang_up_after:
                self.finish, self.done = "hung up", True  # stream_many closes the connection
                return
        if choice.get("finish_reason"):
            self.finish = choice["finish_reason"]
            self.events = chunk.get("usage", {}).get("completion_tokens", self.events)


def stream_many(host, port, concurrency, prompts, max_tokens, hang_up_after=None):
    """Runs every prompt as a streaming greedy completion, at most `concurrency` in flight, on one thread (a
    selector): a thread per client would spend the benchmark's CPU on the GIL.  hang_up_after[i] (None: never):
    the client of prompt i closes the connection after that many events.  Returns [(index, prompt, result or
    None, error or None)], a result being (text, events, finish_reason, ttft_s, [inter-token gaps])."""
    sel, queue, out = selectors.DefaultSelector(), list(enumerate(prompts)), []
    in_flight = 0
    while queue or in_flight:
        while queue and in_flight < concurrency:
            i, p = queue.pop(0)
            st = Stream(host, port, i, p, max_tokens, hang_up_after[i] if hang_up_after else None)
            sel.register(st.sock, selectors.EVENT_READ, st)
            in_flight += 1
        for key, _ in sel.select(timeout=600):
            st = key.data
            try:
                st.feed(st.sock.recv(65536))
            except BlockingIOError:
                continue
            if st.done:
                sel.unregister(st.sock)
                st.sock.close()
                in_flight -= 1
                result = ("".join(st.text), st.events, st.finish, st.ttft or 0.0, st.gaps)
                out.append((st.index, st.prompt, None if st.error else result, st.error))
    return out


def pct(values, p):
    if not values:
        return 0.0
    v = sorted(values)
    return v[min(len(v) - 1, int(p / 100 * len(v)))]


def run_level(host, port, concurrency, prompts, max_tokens, reference):
    results, errors = [], []
    t0 = time.monotonic()
    for i, p, r, err in stream_many(host, port, concurrency, prompts, max_tokens):
        if err:
            errors.append(f"{p!r}: {err}")
        else:
            results.append((i, p, r))
    wall = time.monotonic() - t0
    tokens = sum(r[1] for _, _, r in results)
    mismatches = 0
    for _, p, (text, n, finish, _, _) in results:
        if finish == "length" and n != max_tokens:
            errors.append(f"{p!r}: {n} tokens, finish length, asked {max_tokens}")
        if p in reference and reference[p] != text:
            mismatches += 1
            errors.append(f"{p!r}: greedy text differs from the request alone:\n  alone: {reference[p]!r}\n"
                          f"  here:  {text!r}")
        reference.setdefault(p, text)
    ttft = [r[3] for _, _, r in results]
    gaps = [g for _, _, r in results for g in r[4]]
    return {"concurrency": concurrency, "requests": len(results), "failed": len(prompts) - len(results),
            "mismatches": mismatches, "tokens": tokens, "wall_s": wall, "tokens_per_s": tokens / wall,
            "ttft_p50_ms": 1e3 * pct(ttft, 50), "ttft_p99_ms": 1e3 * pct(ttft, 99),
            "itl_p50_ms": 1e3 * pct(gaps, 50), "itl_p99_ms": 1e3 * pct(gaps, 99)}, errors


def shared_prefix_ttft(args, cache):
    """TTFT (mean, p50, p99 ms) of requests sharing a long system prompt, --prefix-concurrency at a time after a
    warm-up one, and the prefix cache's hit rate."""
    c = args.prefix_concurrency
    proc, host, port = start_server(args, c, () if cache else ("--no-prefix-cache",), ctx=args.prefix_ctx)
    try:
        system = ("You are a storyteller. " * 1000)[: args.prefix_chars]
        stream_many(host, port, 1, [system + " Tell me about a cat."], 1)
        prompts = [f"{system} Story {i}: Once upon a time" for i in range(args.shared_prefix)]
        results = stream_many(host, port, c, prompts, 1)
        failed = [f"{p!r}: {err}" for _, p, _, err in results if err]
        if failed:
            sys.exit("shared-prefix requests failed: " + "; ".join(failed[:3]))
        t = [r[3] for _, _, r, _ in results]
        m = get_metrics(host, port)
        return {"mean_ms": 1e3 * sum(t) / len(t), "p50_ms": 1e3 * pct(t, 50), "p99_ms": 1e3 * pct(t, 99),
                "hit_rate": m.get("vkllm_prefix_cache_hit_rate", 0.0)}
    finally:
        proc.terminate()
        proc.wait()


def disconnect_run(host, port, concurrency, n, max_tokens, reference, seed=1):
    """n requests, concurrency at a time; every other one hangs up after 1..max_tokens-1 events."""
    rng = random.Random(seed)
    plan = [(PROMPTS[i % len(PROMPTS)], rng.randint(1, max(1, max_tokens - 1)) if i % 2 else None) for i in range(n)]
    before = get_metrics(host, port)
    errors, done = [], [0, 0]
    results = stream_many(host, port, concurrency, [p for p, _ in plan], max_tokens, [k for _, k in plan])
    for i, p, r, err in results:
        if err:
            errors.append(f"{p!r}: {err}")
        elif plan[i][1] is None:
            done[0] += 1
            if reference.get(p, r[0]) != r[0]:
                errors.append(f"{p!r}: text differs from the request alone beside hung-up clients")
        else:
            done[1] += 1
    deadline, m = time.monotonic() + 30, {}
    while time.monotonic() < deadline:
        m = get_metrics(host, port)
        if m.get("vkllm_requests_running", 1) == 0 and m.get("vkllm_kv_pages_used", 1) == 0:
            break
        time.sleep(0.1)
    cancelled = m.get("vkllm_requests_cancelled_total", 0) - before.get("vkllm_requests_cancelled_total", 0)
    if m.get("vkllm_kv_pages_used", 1) != 0:
        errors.append(f"KV pages still used after every request ended: {m.get('vkllm_kv_pages_used')}")
    if m.get("vkllm_requests_running", 1) != 0:
        errors.append("requests still running after every client ended")
    return {"disconnect_requests": n, "completed": done[0], "hung_up": done[1], "cancelled": int(cancelled),
            "kv_pages_used_after": int(m.get("vkllm_kv_pages_used", -1))}, errors


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vkllm", default="build/vkllm")
    ap.add_argument("-m", "--model", default="../shared/models/stories260K.gguf")
    ap.add_argument("--url", help="an already running server, host:port (no server is started)")
    ap.add_argument("--levels", default="1,4,16")
    ap.add_argument("--requests", type=int, default=32, help="requests per level")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--shared-prefix", type=int, default=0, help="requests of the shared-prefix run (0: none)")
    ap.add_argument("--prefix-chars", type=int, default=600, help="characters of the shared system prompt")
    ap.add_argument("--prefix-ctx", type=int, default=512, help="--ctx of the shared-prefix servers")
    ap.add_argument("--prefix-concurrency", type=int, default=1, help="shared-prefix requests in flight")
    ap.add_argument("--disconnect", type=int, default=0, help="requests of the hang-up run (0: none)")
    ap.add_argument("--replicas", type=int, default=0, help="the servers' --replicas (0: their default)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    proc = None
    if args.url:
        host, port = args.url.rsplit(":", 1)
        port = int(port)
    else:
        proc, host, port = start_server(args, max(levels))
    reference, rows, failed = {}, [], False
    try:
        # References: every prompt alone.
        run_level(host, port, 1, PROMPTS, args.max_tokens, reference)
        for c in levels:
            prompts = [PROMPTS[i % len(PROMPTS)] for i in range(args.requests)]
            row, errors = run_level(host, port, c, prompts, args.max_tokens, reference)
            rows.append(row)
            for e in errors[:5]:
                print("  error:", e, file=sys.stderr)
            failed |= bool(errors) or row["failed"] > 0
        if args.disconnect:
            row, errors = disconnect_run(host, port, max(levels), args.disconnect, args.max_tokens, reference)
            rows.append(row)
            for e in errors[:5]:
                print("  error:", e, file=sys.stderr)
            failed |= bool(errors)
    finally:
        if proc:
            proc.terminate()
            proc.wait()
    if args.shared_prefix and not args.url:
        on, off = shared_prefix_ttft(args, True), shared_prefix_ttft(args, False)
        rows.append({"shared_prefix_requests": args.shared_prefix, "concurrency": args.prefix_concurrency,
                     "ttft_cached_ms": on["mean_ms"], "ttft_uncached_ms": off["mean_ms"],
                     "ttft_cached_p99_ms": on["p99_ms"], "ttft_uncached_p99_ms": off["p99_ms"],
                     "hit_rate": on["hit_rate"], "speedup": off["mean_ms"] / on["mean_ms"] if on["mean_ms"] else 0})
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        base = rows[0]["tokens_per_s"] if rows and "tokens_per_s" in rows[0] else 0
        print(f"{'clients':>7} {'requests':>8} {'tokens':>7} {'tok/s':>8} {'x1':>5} {'TTFT p50':>9} {'p99':>7} "
              f"{'ITL p50':>8} {'p99':>7}  ms")
        for r in rows:
            if "tokens_per_s" in r:
                print(f"{r['concurrency']:>7} {r['requests']:>8} {r['tokens']:>7} {r['tokens_per_s']:>8.1f} "
                      f"{r['tokens_per_s'] / base if base else 0:>5.2f} {r['ttft_p50_ms']:>9.1f} "
                      f"{r['ttft_p99_ms']:>7.1f} {r['itl_p50_ms']:>8.1f} {r['itl_p99_ms']:>7.1f}"
                      f"{'  MISMATCH' if r['mismatches'] else ''}")
            elif "disconnect_requests" in r:
                print(f"hang-up run ({r['disconnect_requests']} requests): {r['completed']} completed, "
                      f"{r['hung_up']} hung up, {r['cancelled']} cancelled by the server, "
                      f"{r['kv_pages_used_after']} KV pages used after")
            else:
                print(f"shared prefix ({r['shared_prefix_requests']} requests, {r['concurrency']} at a time): TTFT mean "
                      f"{r['ttft_cached_ms']:.1f} ms (p99 {r['ttft_cached_p99_ms']:.1f}) cached, "
                      f"{r['ttft_uncached_ms']:.1f} ms (p99 {r['ttft_uncached_p99_ms']:.1f}) without the cache "
                      f"({r['speedup']:.2f}x); prefix-cache hit rate {r['hit_rate']:.3f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
