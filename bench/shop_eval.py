#!/usr/bin/python3
"""The shop assistant measured like a product (issue 19, item 7; what exists so far).

    bench/shop_eval.py [build/bin/llmforge] [--out build/bench/shop]

Starts `llmforge serve -m models/default --safety models/safety --embeddings models/retriever`
on 127.0.0.1, plays the hand-written DST dialogues (tests/apps/data/shop/) as chat sessions
(each user turn sent with the session's last 5 turns, nucleus sampling at temperature 0.7,
top_p 0.9, streamed) with 1 and with 8 sessions at once, and reports time to first token and
full-reply time (p50/p99), reply diversity (distinct-1/2 of the replies at temperature 0.7 vs
greedy), and the offline scores of the DST, the safety filter and the retriever on their
hand-written sets. Writes OUT/shop-eval.md (a table) and OUT/shop-eval.svg (TTFT and reply time).
Not yet measured (their parts are not built): grounded-fact accuracy and resolution rate.
Standard library only (http.client, threads)."""
import argparse, http.client, json, os, re, statistics, subprocess, sys, threading, time

ap = argparse.ArgumentParser()
ap.add_argument("bin", nargs="?", default="build/bin/llmforge")
ap.add_argument("--out", default="build/bench/shop")
ap.add_argument("--threads", default="2")
a = ap.parse_args()
os.makedirs(a.out, exist_ok=True)
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
data = os.path.join(root, "tests/apps/data/shop")


def offline(cmd, stdin_file):
    with open(stdin_file) as f:
        r = subprocess.run([a.bin] + cmd, stdin=f, capture_output=True, text=True, check=True)
    return json.loads(r.stderr.strip().splitlines()[-1])


scores = {
    "dst_1": offline(["dst", "--score"], f"{data}/dst_handwritten.jsonl"),
    "dst_2": offline(["dst", "--score"], f"{data}/dst_handwritten_2.jsonl"),
    "safety_1": offline(["safety", "--score"], f"{data}/safety_handwritten.jsonl"),
    "safety_2": offline(["safety", "--score"], f"{data}/safety_handwritten_2.jsonl"),
}
r = subprocess.run([a.bin, "retrieve", "--score", f"{data}/retrieval_handwritten.jsonl"], capture_output=True, text=True, check=True)
scores["retrieval"] = json.loads(r.stderr.strip().splitlines()[-1])

log = open(os.path.join(a.out, "serve.log"), "w")
srv = subprocess.Popen([a.bin, "serve", "-m", f"{root}/models/default", "--safety", f"{root}/models/safety",
                        "--embeddings", f"{root}/models/retriever", "--host", "127.0.0.1", "--port", "0",
                        "--parallel", "8", "--threads", a.threads], stderr=log)
port = None
for _ in range(300):
    time.sleep(0.1)
    m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", open(log.name).read())
    if m:
        port = int(m.group(1))
        break
if port is None:
    srv.kill()
    sys.exit("shop_eval: the server did not start (see %s)" % log.name)

dialogues = [json.loads(l)["turns"] for l in open(f"{data}/dst_handwritten.jsonl")]
SYSTEM = "You are the customer-service assistant of Northwind Goods, an online shop. Answer politely and briefly."


filtered = [0]  # replies the safety filter cut or refused


def chat(history, temperature, seed):
    """One streamed reply: (ttft seconds, total seconds, text)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    body = {"model": "default", "messages": [{"role": "system", "content": SYSTEM}] + history, "max_tokens": 96,
            "temperature": temperature, "top_p": 0.9, "seed": seed, "stream": True}
    t0 = time.perf_counter()
    c.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    resp = c.getresponse()
    ttft, text, buf = None, "", b""
    while True:
        chunk = resp.read1(4096)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            if not ev.startswith(b"data: ") or ev == b"data: [DONE]":
                continue
            for ch in json.loads(ev[6:])["choices"]:
                piece = ch.get("delta", {}).get("content") or ""
                if piece and ttft is None:
                    ttft = time.perf_counter() - t0
                text += piece
                if ch.get("finish_reason") == "content_filter":
                    filtered[0] += 1
    c.close()
    return ttft if ttft is not None else time.perf_counter() - t0, time.perf_counter() - t0, text


def session(turns, temperature, seed, out):
    history = []
    for i, t in enumerate(turns):
        history = (history + [{"role": "user", "content": t}])[-9:]  # the last 5 user turns and 4 replies
        ttft, total, text = chat(history, temperature, seed + i)
        out.append((ttft, total, text))
        history.append({"role": "assistant", "content": text})


def run(n_sessions, temperature):
    results, threads = [], []
    per = [dialogues[i::n_sessions] for i in range(n_sessions)]
    def worker(ds, k):
        for j, d in enumerate(ds):
            session(d, temperature, 1000 * k + j, results)
    t0 = time.perf_counter()
    for k, ds in enumerate(per):
        threads.append(threading.Thread(target=worker, args=(ds, k)))
        threads[-1].start()
    for t in threads:
        t.join()
    return results, time.perf_counter() - t0


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def distinct(texts, n):
    grams, total = set(), 0
    for t in texts:
        w = t.split()
        for i in range(len(w) - n + 1):
            grams.add(tuple(w[i:i + n]))
            total += 1
    return len(grams) / total if total else 0.0


runs = {}
try:
    chat([{"role": "user", "content": "hello"}], 0.7, 1)  # warm-up
    for n in (1, 8):
        res, wall = run(n, 0.7)
        runs[n] = {"replies": len(res), "wall_s": wall, "ttft": [x[0] for x in res], "total": [x[1] for x in res],
                   "texts": [x[2] for x in res]}
    greedy, _ = run(8, 0.0)
finally:
    srv.terminate()
    srv.wait(timeout=30)

rows = []
for n, r in runs.items():
    rows.append(f"| {n} | {r['replies']} | {1000 * statistics.median(r['ttft']):.0f} | {1000 * pct(r['ttft'], 99):.0f} | "
                f"{1000 * statistics.median(r['total']):.0f} | {1000 * pct(r['total'], 99):.0f} |")
d07 = runs[8]["texts"]  # the same dialogues as the greedy run: distinct-n compares like with like
dg = [x[2] for x in greedy]
s = scores
md = f"""# Shop assistant evaluation (bench/shop_eval.py)

Served: `llmforge serve -m models/default --safety models/safety --embeddings models/retriever --parallel 8 --threads {a.threads}`;
sessions: the {len(dialogues)} hand-written DST dialogues, each user turn sent with the last 5 turns, streamed,
temperature 0.7, top_p 0.9, max_tokens 96.

| sessions at once | replies | TTFT p50 ms | TTFT p99 ms | full reply p50 ms | full reply p99 ms |
|---|---|---|---|---|---|
""" + "\n".join(rows) + f"""

| measure | value |
|---|---|
| reply diversity, temperature 0.7: distinct-1 / distinct-2 | {distinct(d07, 1):.3f} / {distinct(d07, 2):.3f} |
| reply diversity, greedy: distinct-1 / distinct-2 | {distinct(dg, 1):.3f} / {distinct(dg, 2):.3f} |
| DST joint goal, set 1 (used while building) / set 2 (never tuned on) | {s['dst_1']['joint_goal_accuracy']:.3f} / {s['dst_2']['joint_goal_accuracy']:.3f} |
| safety blocked / false positives, set 1 | {s['safety_1']['block_rate']:.3f} / {s['safety_1']['false_positive_rate']:.3f} |
| safety blocked / false positives, set 2 | {s['safety_2']['block_rate']:.3f} / {s['safety_2']['false_positive_rate']:.3f} |
| retrieval recall@1 / @5, dual encoder (BM25) | {s['retrieval']['dual_encoder']['recall@1']:.3f} / {s['retrieval']['dual_encoder']['recall@5']:.3f} ({s['retrieval']['bm25']['recall@1']:.3f} / {s['retrieval']['bm25']['recall@5']:.3f}) |
| replies cut or refused by the safety filter (all runs) | {filtered[0]} of {sum(r['replies'] for r in runs.values()) + len(dg)} |
| grounded facts, resolution rate | not measured yet (grounding is not built) |
"""
open(os.path.join(a.out, "shop-eval.md"), "w").write(md)
print(md)
# Picture: TTFT and full-reply p50/p99 per concurrency, grouped bars.
W, H, L, B = 640, 320, 60, 60
vals = [(f"{n} session{'s' if n > 1 else ''}", [statistics.median(r["ttft"]), pct(r["ttft"], 99), statistics.median(r["total"]),
                                             pct(r["total"], 99)]) for n, r in runs.items()]
top = max(max(v) for _, v in vals) * 1.15 * 1000
names, colors = ["TTFT p50", "TTFT p99", "reply p50", "reply p99"], ["#9ecae1", "#3182bd", "#fdae6b", "#e6550d"]
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
       '<rect width="100%" height="100%" fill="white"/>',
       f'<text x="{L}" y="20" font-size="14">Shop assistant latency, ms (default model, --safety on)</text>']
gw = (W - L - 20) / len(vals)
for i, (lab, v) in enumerate(vals):
    for j, x in enumerate(v):
        h = (H - 40 - B) * 1000 * x / top
        xx = L + i * gw + 10 + j * (gw - 20) / 4
        svg.append(f'<rect x="{xx:.0f}" y="{H - B - h:.0f}" width="{(gw - 20) / 4 - 4:.0f}" height="{h:.0f}" fill="{colors[j]}"/>')
        svg.append(f'<text x="{xx + (gw - 20) / 8:.0f}" y="{H - B - h - 3:.0f}" text-anchor="middle">{1000 * x:.0f}</text>')
    svg.append(f'<text x="{L + i * gw + gw / 2:.0f}" y="{H - B + 16}" text-anchor="middle">{lab}</text>')
for j, n in enumerate(names):
    svg.append(f'<text x="{L + j * 120}" y="{H - 14}" fill="{colors[j]}">■ {n}</text>')
svg.append("</svg>")
open(os.path.join(a.out, "shop-eval.svg"), "w").write("\n".join(svg) + "\n")
