#!/usr/bin/python3
"""The visual question answering models of issue 20 scored per question type.

    bench/vqa_eval.py [build/bin/llmforge] [--models models/vqa] [--scenes 500] [--out docs]

For each model folder (text, image, gated, concat, cross: `make vqa-models`) runs
`llmforge vqa -m DIR --eval SPLIT --scenes N` on three generated splits the models never trained
on (seed 7): val and test_iid (condition A, the training combinations) and test (condition B: the
held-out colour-shape combinations, CLEVR-CoGenT style). Writes OUT/vqa-eval.md (accuracy per
type, the gated model's mean weight on the image per type) and OUT/vqa-eval.svg (grouped bars).
Standard library only."""
import argparse, json, os, subprocess, sys

ap = argparse.ArgumentParser()
ap.add_argument("bin", nargs="?", default="build/bin/llmforge")
ap.add_argument("--models", default="models/vqa")
ap.add_argument("--scenes", type=int, default=500)
ap.add_argument("--out", default="docs")
ap.add_argument("--threads", default="2")
a = ap.parse_args()

KINDS = ["text", "image", "gated", "concat", "cross"]
LABEL = {"text": "question only", "image": "image only", "gated": "gated fusion (seed)", "concat": "concatenation",
         "cross": "cross-attention"}
SPLITS = ["val", "test_iid", "test"]
TYPES = ["count", "exist", "query_color", "query_shape", "query_size", "relation"]

res = {}
for k in KINDS:
    d = os.path.join(a.models, k)
    if not os.path.isdir(d):
        sys.exit(f"vqa_eval: {d}: missing (hint: make vqa-models)")
    for s in SPLITS:
        out = subprocess.run([a.bin, "vqa", "-m", d, "--eval", s, "--scenes", str(a.scenes), "-t", a.threads],
                             check=True, capture_output=True, text=True).stdout
        res[(k, s)] = json.loads(out)
        print(f"{k:7s} {s:9s} {res[(k, s)]['accuracy']:.3f}", file=sys.stderr)

md = ["# VQA on the generated scenes (issue 20)", "",
      f"`bench/vqa_eval.py {a.bin} --scenes {a.scenes}` — models from `make vqa-models` (scripts/vqa_models.sh: "
      "each a ViT + RoBERTa of width 64 and 2 layers on 64×64 images, 4,000 steps of 32 questions from 4,000 "
      "training scenes, seed 1). Scored on splits generated with seed 7: **val** and **test_iid** have the "
      "training colour–shape combinations (condition A); **test** is condition B, whose objects include the "
      "colour–shape combinations training never showed (red and green squares, blue and yellow circles, purple "
      "and cyan triangles). "
      f"{res[('gated', 'test')]['n']} questions per split.", "",
      "| model | " + " | ".join(SPLITS) + " |", "|---|" + "---|" * len(SPLITS)]
for k in KINDS:
    md.append(f"| {LABEL[k]} | " + " | ".join(f"{res[(k, s)]['accuracy']:.3f}" for s in SPLITS) + " |")
md += ["", "Accuracy per question type on **test** (held-out combinations):", "",
       "| model | " + " | ".join(TYPES) + " |", "|---|" + "---|" * len(TYPES)]
for k in KINDS:
    t = res[(k, "test")]["types"]
    md.append(f"| {LABEL[k]} | " + " | ".join(f"{t[x]['accuracy']:.3f}" for x in TYPES) + " |")
g = res[("gated", "test")]["types"]
if "gate_image" in g["count"]:
    md += ["", "The gated model's mean gate weight on the image (the rest goes to the question), per type, on test:", "",
           "| " + " | ".join(TYPES) + " |", "|" + "---|" * len(TYPES),
           "| " + " | ".join(f"{g[x]['gate_image']:.2f}" for x in TYPES) + " |"]
best_uni = max(res[("text", "test")]["accuracy"], res[("image", "test")]["accuracy"])
md += ["", f"Margin on test over the better single-modality baseline: gated {res[('gated', 'test')]['accuracy'] - best_uni:+.3f}, "
       f"concat {res[('concat', 'test')]['accuracy'] - best_uni:+.3f}, cross {res[('cross', 'test')]['accuracy'] - best_uni:+.3f}.", ""]
os.makedirs(a.out, exist_ok=True)
open(os.path.join(a.out, "vqa-eval.md"), "w").write("\n".join(md))

# Grouped bars: one group per split, one bar per model.
W, H, pad = 760, 320, 50
colors = {"text": "#999999", "image": "#c49a6c", "gated": "#3b7dd8", "concat": "#5aa55a", "cross": "#c0504d"}
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<text x="{W/2}" y="18" text-anchor="middle" font-size="14">VQA accuracy on generated scenes (issue 20)</text>']
plot_h = H - 2 * pad
for i in range(6):
    y = H - pad - plot_h * i / 5
    svg.append(f'<line x1="{pad}" y1="{y}" x2="{W-10}" y2="{y}" stroke="#ddd"/><text x="{pad-6}" y="{y+4}" text-anchor="end">{i/5:.1f}</text>')
gw = (W - pad - 20) / len(SPLITS)
for si, s in enumerate(SPLITS):
    x0 = pad + si * gw + 15
    bw = (gw - 30) / len(KINDS)
    for ki, k in enumerate(KINDS):
        acc = res[(k, s)]["accuracy"]
        h = plot_h * acc
        svg.append(f'<rect x="{x0 + ki*bw:.1f}" y="{H-pad-h:.1f}" width="{bw-3:.1f}" height="{h:.1f}" fill="{colors[k]}"/>')
        svg.append(f'<text x="{x0 + ki*bw + (bw-3)/2:.1f}" y="{H-pad-h-3:.1f}" text-anchor="middle" font-size="9">{acc:.2f}</text>')
    svg.append(f'<text x="{x0 + (gw-30)/2:.1f}" y="{H-pad+16}" text-anchor="middle">{s}</text>')
for ki, k in enumerate(KINDS):
    svg.append(f'<rect x="{pad + ki*140}" y="{H-18}" width="10" height="10" fill="{colors[k]}"/><text x="{pad + ki*140 + 14}" y="{H-9}">{LABEL[k]}</text>')
svg.append("</svg>")
open(os.path.join(a.out, "vqa-eval.svg"), "w").write("\n".join(svg))
print("\n".join(md))
