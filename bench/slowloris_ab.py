#!/usr/bin/env python3
"""Slowloris against `llmforge serve`, before/after: N connections that each send a request line and
then one header line every INTERVAL seconds (never finishing their head), while a probe times
GET /health every second. Prints one JSON line per server: probes answered, median and worst
latency. Each binary is started on its own port with the same model and stopped afterwards.

  bench/slowloris_ab.py --model M.gguf --bin build/bin/llmforge [--bin /old/llmforge] \
      [--conns 66] [--interval 12] [--seconds 30]
"""
import argparse, json, socket, statistics, subprocess, time


def probe(port, timeout):
    t0 = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            data = s.recv(4096)
            if data.startswith(b"HTTP/1.1 200"):
                return time.monotonic() - t0
    except OSError:
        pass
    return None


def run(binary, model, port, conns, interval, seconds):
    srv = subprocess.Popen([binary, "serve", "-m", model, "--port", str(port), "-t", "2"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            if probe(port, 1.0) is not None:
                break
            time.sleep(0.1)
        slow = []
        for _ in range(conns):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"POST /v1/completions HTTP/1.1\r\n")
            slow.append(s)
        start, last_drip, lat, missed = time.monotonic(), time.monotonic(), [], 0
        while time.monotonic() - start < seconds:
            if time.monotonic() - last_drip >= interval:
                for s in slow:
                    try:
                        s.sendall(b"X-Slow: 1\r\n")
                    except OSError:
                        pass
                last_drip = time.monotonic()
            t = probe(port, 5.0)
            if t is None:
                missed += 1
            else:
                lat.append(t)
            time.sleep(1.0)
        for s in slow:
            s.close()
        return {"bin": binary, "conns": conns, "interval_s": interval, "probes": len(lat) + missed,
                "answered": len(lat), "p50_ms": round(statistics.median(lat) * 1000, 1) if lat else None,
                "max_ms": round(max(lat) * 1000, 1) if lat else None}
    finally:
        srv.terminate()
        try:
            srv.wait(40)
        except subprocess.TimeoutExpired:
            srv.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--bin", action="append", required=True)
    ap.add_argument("--conns", type=int, default=66)
    ap.add_argument("--interval", type=float, default=12)
    ap.add_argument("--seconds", type=float, default=30)
    a = ap.parse_args()
    for i, b in enumerate(a.bin):
        print(json.dumps(run(b, a.model, 18655 + i, a.conns, a.interval, a.seconds)), flush=True)


if __name__ == "__main__":
    main()
