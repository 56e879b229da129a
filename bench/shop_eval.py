#!/usr/bin/python3
"""The shop assistant measured like a product (issue 19, item 7).

    bench/shop_eval.py [build/bin/llmforge] [--out build/bench/shop] [--dialogues 150]

Seeds a shop database with corpus seed 2 (orders the default model never saw: it trained on seed
1) and starts `llmforge serve -m models/default --app shop --db … --safety models/safety
--embeddings models/retriever` on 127.0.0.1. Plays, each as a session of the customer who owns
its order, with nucleus sampling at temperature 0.7 (top_p 0.9) unless said otherwise, streamed:
  - held-out corpus dialogues: the first --dialogues dialogues of corpus seed 2 (the generator's
    phrasing, orders and combinations the model did not see), their user turns only;
  - the 30 hand-written grounding questions (tests/apps/data/shop/grounding_handwritten.jsonl),
    each about one of its customer's orders;
  - the hand-written DST dialogues, with 1 and with 8 sessions at once, for latency.
Every reply is checked against the database by `llmforge shop check` (apps/shop/grounding.h):
grounded = every fact it states (order ids, dates, amounts, tracking numbers, carriers, products,
shipping status) matches the record of the order the dialogue is about; resolution = it contains
what the turn's true intent needs (hand-written: the intents written with the questions; corpus
dialogues: the generator's label; a dialogue is resolved when a reply in it is — task success). Also: time to first token and full-reply time (p50/p99) under 1 and 8 sessions, reply
diversity (distinct-1/2 at temperature 0.7 vs greedy on the same dialogues), and the offline scores
of the DST, the safety filter and the retriever on their hand-written sets.
Writes OUT/shop-eval.md (tables) and OUT/shop-eval.svg (grounding/resolution and latency).
Standard library only (http.client, sqlite3, threads)."""
import argparse, http.client, json, os, re, sqlite3, statistics, subprocess, sys, threading, time

ap = argparse.ArgumentParser()
ap.add_argument("bin", nargs="?", default="build/bin/llmforge")
ap.add_argument("--out", default="build/bench/shop")
ap.add_argument("--threads", default="2")
ap.add_argument("--dialogues", type=int, default=150)
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
    "dst_3": offline(["dst", "--score"], f"{data}/dst_handwritten_3.jsonl"),
    "safety_1": offline(["safety", "--score"], f"{data}/safety_handwritten.jsonl"),
    "safety_2": offline(["safety", "--score"], f"{data}/safety_handwritten_2.jsonl"),
    "safety_3": offline(["safety", "--score"], f"{data}/safety_handwritten_3.jsonl"),
    "safety_4": offline(["safety", "--score"], f"{data}/safety_handwritten_4.jsonl"),
}
r = subprocess.run([a.bin, "retrieve", "--score", f"{data}/retrieval_handwritten.jsonl"], capture_output=True, text=True, check=True)
scores["retrieval"] = json.loads(r.stderr.strip().splitlines()[-1])

db = os.path.join(a.out, "shop-seed2.db")
subprocess.run([a.bin, "shop", "init", "--db", db, "--seed", "2", "--force"], check=True, capture_output=True)
con = sqlite3.connect(db)
owner = dict(con.execute("SELECT id, customer_id FROM orders"))
orders_of = {}
for oid, cid in con.execute("SELECT id, customer_id FROM orders ORDER BY customer_id, id"):
    orders_of.setdefault(cid, []).append(oid)
con.close()

log = open(os.path.join(a.out, "serve.log"), "w")
srv = subprocess.Popen([a.bin, "serve", "-m", f"{root}/models/default", "--app", "shop", "--db", db,
                        "--safety", f"{root}/models/safety", "--embeddings", f"{root}/models/retriever",
                        "--host", "127.0.0.1", "--port", "0", "--parallel", "8", "--threads", a.threads,
                        "--ctx-size", "512"], stderr=log)
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

filtered = [0]  # replies the safety filter cut or refused
filtered_examples = []


def request(method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request(method, path, json.dumps(body) if body is not None else None, {"Content-Type": "application/json"})
    j = json.loads(c.getresponse().read())
    c.close()
    return j


def chat(session_id, text, temperature, seed):
    """One streamed reply: (ttft seconds, total seconds, text, app info)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    body = {"session_id": session_id, "messages": [{"role": "user", "content": text}], "max_tokens": 120,
            "temperature": temperature, "top_p": 0.9, "seed": seed, "stream": True}
    t0 = time.perf_counter()
    c.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    resp = c.getresponse()
    ttft, out, buf, app = None, "", b"", {}
    while True:
        chunk = resp.read1(4096)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            if not ev.startswith(b"data: ") or ev == b"data: [DONE]":
                continue
            j = json.loads(ev[6:])
            if "error" in j:
                raise RuntimeError(j["error"]["message"])
            app = j.get("app", app)
            for ch in j["choices"]:
                piece = ch.get("delta", {}).get("content") or ""
                if piece and ttft is None:
                    ttft = time.perf_counter() - t0
                out += piece
                if ch.get("finish_reason") == "content_filter":
                    filtered[0] += 1
                    filtered_examples.append(f"{text} -> {out}")
    c.close()
    return ttft if ttft is not None else time.perf_counter() - t0, time.perf_counter() - t0, out, app


def play(customer, turns, temperature, seed, sink, golds=None, dialogue=None):
    """golds: per turn, the true state to judge the reply by (None: not judged)."""
    sid = request("POST", "/v1/app/sessions", {"customer_id": customer})["id"]
    for i, t in enumerate(turns):
        ttft, total, text, app = chat(sid, t, temperature, seed + i)
        sink.append({"ttft": ttft, "total": total, "text": text, "tracked": app.get("state", {}), "turn": t,
                     "state": golds[i] if golds else None, "dialogue": dialogue})


def run_parallel(jobs, n_sessions, temperature):
    """jobs: [(customer, turns[, golds])]; n_sessions workers take them round robin."""
    results, threads = [], []
    def worker(k):
        for j in range(k, len(jobs), n_sessions):
            play(jobs[j][0], jobs[j][1], temperature, 1000 * k + j, results, jobs[j][2] if len(jobs[j]) > 2 else None, j)
    t0 = time.perf_counter()
    for k in range(n_sessions):
        threads.append(threading.Thread(target=worker, args=(k,)))
        threads[-1].start()
    for t in threads:
        t.join()
    return results, time.perf_counter() - t0


def check(results, per_dialogue):
    """`llmforge shop check` over the replies judged by their true state. Resolution per reply, or
    per dialogue (resolved when one of its replies is)."""
    kept = [r for r in results if r["state"]]
    lines = "".join(json.dumps({"state": r["state"], "reply": r["text"]}) + "\n" for r in kept)
    out = subprocess.run([a.bin, "shop", "check", "--db", db], input=lines, capture_output=True, text=True, check=True).stdout
    g = wf = facts = wrong = 0
    misses, dialogues = [], {}
    for r, l in zip(kept, out.splitlines()):
        j = json.loads(l)
        facts += j["facts"]
        wrong += len(j["wrong"])
        if j["facts"] > 0:
            wf += 1
            g += j["grounded"]
            if not j["grounded"]:
                misses.append(f"{r['turn']} -> {r['text']}  {j['wrong']}")
        if j["counted"]:
            key = r["dialogue"] if per_dialogue else id(r)
            dialogues[key] = dialogues.get(key, False) or j["resolved"]
            if not j["resolved"]:
                misses.append(f"{r['turn']} -> {r['text']}  (missing: {j['missing']}; tracked {r['tracked'].get('intent')})")
    res, cnt = sum(dialogues.values()), len(dialogues)
    return {"grounded": g, "with_facts": wf, "facts": facts, "wrong": wrong, "resolved": res, "counted": cnt, "misses": misses}


def gold(intent, order):
    return {"intent": intent, "order_id": order, "product": None, "new_address": None, "discount_code": None}


# Held-out corpus dialogues (seed 2): the customer is the owner of the dialogue's order.
gen = os.path.join(a.out, "heldout.jsonl")
subprocess.run([a.bin, "gen-dialogues", "--n", str(a.dialogues), "--seed", "2", "--out", gen], check=True, capture_output=True)
heldout = []
for l in open(gen):
    msgs = json.loads(l)["messages"]
    ids = [m["content"][7:13] for m in msgs if m["role"] == "tool" and m["content"].startswith("order #")]
    customer = owner.get(ids[0]) if ids else "U00001"
    if customer is None:  # an order the database did not take (a duplicate id)
        continue
    turns, golds = [], []
    for i, m in enumerate(msgs):
        if m["role"] != "user":
            continue
        turns.append(m["content"])
        tool = msgs[i + 1]["content"] if i + 1 < len(msgs) and msgs[i + 1]["role"] == "tool" else ""
        last = tool.splitlines()[-1] if tool else ""
        intent = last[len("intent "):] if last.startswith("intent ") else None
        order = tool[7:13] if tool.startswith("order #") else None
        golds.append(gold(intent, order) if intent else None)  # the generator's label; thanks and greetings unjudged
    heldout.append((customer, turns, golds))
# Hand-written grounding questions, each about one order of its customer.
handwritten = []
customers = sorted(c for c in orders_of)
for n, l in enumerate(open(f"{data}/grounding_handwritten.jsonl")):
    c = customers[n % len(customers)]
    oid = orders_of[c][n % len(orders_of[c])]
    written = ["#" + oid, oid, oid[0].lower() + "-" + oid[1:]][n % 3]
    d = json.loads(l)
    golds, named = [], False
    for t, intent in zip(d["turns"], d["intents"]):
        named |= "{id}" in t
        golds.append(gold(intent, oid if named else None))
    handwritten.append((c, [t.replace("{id}", written) for t in d["turns"]], golds))
dst_dialogues = [("U00001", json.loads(l)["turns"]) for l in open(f"{data}/dst_handwritten.jsonl")]

runs, quality = {}, {}
try:
    chat(request("POST", "/v1/app/sessions", {"customer_id": "U00001"})["id"], "hello", 0.7, 1)  # warm-up
    for name, jobs, per_dialogue in (("held-out corpus dialogues (seed 2)", heldout, True),
                                     ("hand-written questions", handwritten, False)):
        res, _ = run_parallel(jobs, 8, 0.7)
        quality[name] = check(res, per_dialogue)
        gres, _ = run_parallel(jobs, 8, 0.0)
        quality[name + ", greedy"] = check(gres, per_dialogue)
    for n in (1, 8):
        res, wall = run_parallel(dst_dialogues, n, 0.7)
        runs[n] = {"replies": len(res), "wall_s": wall, "ttft": [x["ttft"] for x in res], "total": [x["total"] for x in res],
                   "texts": [x["text"] for x in res]}
    greedy, _ = run_parallel(dst_dialogues, 8, 0.0)
finally:
    srv.terminate()
    srv.wait(timeout=30)


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


def share(x, y):
    return f"{x / y:.3f} ({x}/{y})" if y else "–"


qrows = [f"| {name} | {share(q['grounded'], q['with_facts'])} | {share(q['facts'] - q['wrong'], q['facts'])} | "
         f"{share(q['resolved'], q['counted'])} |" for name, q in quality.items()]
lrows = [f"| {n} | {r['replies']} | {1000 * statistics.median(r['ttft']):.0f} | {1000 * pct(r['ttft'], 99):.0f} | "
         f"{1000 * statistics.median(r['total']):.0f} | {1000 * pct(r['total'], 99):.0f} |" for n, r in runs.items()]
d07 = runs[8]["texts"]
dg = [x["text"] for x in greedy]
s = scores
md = f"""# Shop assistant evaluation (bench/shop_eval.py)

Served: `llmforge serve -m models/default --app shop --db (seed 2) --safety models/safety --embeddings models/retriever
--parallel 8 --threads {a.threads} --ctx-size 512`; every dialogue a session of the customer who owns its order;
temperature 0.7, top_p 0.9, max_tokens 120, streamed (greedy rows: temperature 0). Facts checked by `llmforge shop check`.

| dialogues | grounded replies (all facts right) | facts right | resolved (corpus: dialogues; hand-written: replies) |
|---|---|---|---|
""" + "\n".join(qrows) + f"""

| sessions at once | replies | TTFT p50 ms | TTFT p99 ms | full reply p50 ms | full reply p99 ms |
|---|---|---|---|---|---|
""" + "\n".join(lrows) + f"""

| measure | value |
|---|---|
| reply diversity, temperature 0.7: distinct-1 / distinct-2 | {distinct(d07, 1):.3f} / {distinct(d07, 2):.3f} |
| reply diversity, greedy: distinct-1 / distinct-2 | {distinct(dg, 1):.3f} / {distinct(dg, 2):.3f} |
| DST joint goal, set 1 (used while building) / sets 2 and 3 (never tuned on) | {s['dst_1']['joint_goal_accuracy']:.3f} / {s['dst_2']['joint_goal_accuracy']:.3f} and {s['dst_3']['joint_goal_accuracy']:.3f} |
| safety blocked / false positives, set 1 | {s['safety_1']['block_rate']:.3f} / {s['safety_1']['false_positive_rate']:.3f} |
| safety blocked / false positives, set 2 | {s['safety_2']['block_rate']:.3f} / {s['safety_2']['false_positive_rate']:.3f} |
| safety blocked / false positives, set 3 | {s['safety_3']['block_rate']:.3f} / {s['safety_3']['false_positive_rate']:.3f} |
| safety blocked / false positives, set 4 (written last, never tuned on) | {s['safety_4']['block_rate']:.3f} / {s['safety_4']['false_positive_rate']:.3f} |
| retrieval recall@1 / @5, dual encoder (BM25) | {s['retrieval']['dual_encoder']['recall@1']:.3f} / {s['retrieval']['dual_encoder']['recall@5']:.3f} ({s['retrieval']['bm25']['recall@1']:.3f} / {s['retrieval']['bm25']['recall@5']:.3f}) |
| replies cut or refused by the safety filter (all runs) | {filtered[0]} |

Turns the safety filter refused or cut (first 10 of {filtered[0]}):

""" + "\n".join(f"- {e}" for e in filtered_examples[:10]) + """

Replies that were not grounded or not resolved (temperature 0.7 and greedy runs):

""" + "\n".join(f"- {m}" for q in quality.values() for m in q["misses"][:40]) + "\n"
open(os.path.join(a.out, "shop-eval.md"), "w").write(md)
print(md)

# Picture: left, grounded and resolved shares per set; right, TTFT and full-reply p50/p99 per concurrency.
W, H = 760, 340
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
       '<rect width="100%" height="100%" fill="white"/>',
       '<text x="20" y="20" font-size="14">Shop assistant: grounded and resolved replies (share)</text>',
       '<text x="420" y="20" font-size="14">Latency, ms (--safety on)</text>']
bars = [(name.replace("held-out corpus dialogues (seed 2)", "corpus").replace("hand-written questions", "hand-written"),
         [q["grounded"] / max(1, q["with_facts"]), q["resolved"] / max(1, q["counted"])]) for name, q in quality.items()]
bw = 340 / len(bars)
for i, (lab, v) in enumerate(bars):
    for j, x in enumerate(v):
        h = 220 * x
        xx = 30 + i * bw + 6 + j * (bw - 12) / 2
        svg.append(f'<rect x="{xx:.0f}" y="{270 - h:.0f}" width="{(bw - 12) / 2 - 3:.0f}" height="{h:.0f}" '
                   f'fill="{["#31a354", "#756bb1"][j]}"/>')
        svg.append(f'<text x="{xx + (bw - 12) / 4:.0f}" y="{266 - h:.0f}" text-anchor="middle">{x:.2f}</text>')
    for k, part in enumerate(lab.split(", ")):
        svg.append(f'<text x="{30 + i * bw + bw / 2:.0f}" y="{286 + 12 * k}" text-anchor="middle">{part}</text>')
svg.append('<text x="30" y="325" fill="#31a354">■ grounded</text><text x="120" y="325" fill="#756bb1">■ resolved</text>')
vals = [(f"{n} session{'s' if n > 1 else ''}", [statistics.median(r["ttft"]), pct(r["ttft"], 99), statistics.median(r["total"]),
                                             pct(r["total"], 99)]) for n, r in runs.items()]
top = max(max(v) for _, v in vals) * 1.15 * 1000
names, colors = ["TTFT p50", "TTFT p99", "reply p50", "reply p99"], ["#9ecae1", "#3182bd", "#fdae6b", "#e6550d"]
gw = 320 / len(vals)
for i, (lab, v) in enumerate(vals):
    for j, x in enumerate(v):
        h = 220 * 1000 * x / top
        xx = 420 + i * gw + 6 + j * (gw - 12) / 4
        svg.append(f'<rect x="{xx:.0f}" y="{270 - h:.0f}" width="{(gw - 12) / 4 - 3:.0f}" height="{h:.0f}" fill="{colors[j]}"/>')
        svg.append(f'<text x="{xx + (gw - 12) / 8:.0f}" y="{266 - h:.0f}" text-anchor="middle">{1000 * x:.0f}</text>')
    svg.append(f'<text x="{420 + i * gw + gw / 2:.0f}" y="{286}" text-anchor="middle">{lab}</text>')
for j, n in enumerate(names):
    svg.append(f'<text x="{420 + j * 80}" y="325" fill="{colors[j]}">■ {n}</text>')
svg.append("</svg>")
open(os.path.join(a.out, "shop-eval.svg"), "w").write("\n".join(svg) + "\n")
