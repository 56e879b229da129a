#!/usr/bin/python3
"""The vision-language model of issue 20 (item 5) scored on the generated scenes.

    bench/vlm_eval.py [build/bin/llmforge] [--model models/vlm] [--scenes 200] [--questions 600] [--out docs]

Runs `llmforge vlm-eval` (answers generated greedily through the same prompt path as `generate
--image --chat`: ChatML user turn "<image>\\n" + question) on splits the model never trained on
(seed 7): val and test_iid (the training colour-shape combinations) and test (held-out
combinations), each once with the right images and once with --shuffle-images (every question
shown another scene's image: what the question alone gives the model). Also scores the model's
descriptions ("Describe the image.": objects named with size, colour and shape, F1 against the
scene). Writes OUT/vlm-eval.md and OUT/vlm-eval.svg. Standard library only."""
import argparse, json, os, subprocess, sys

ap = argparse.ArgumentParser()
ap.add_argument("bin", nargs="?", default="build/bin/llmforge")
ap.add_argument("--model", default="models/vlm")
ap.add_argument("--scenes", type=int, default=200)
ap.add_argument("--questions", type=int, default=600)
ap.add_argument("--out", default="docs")
ap.add_argument("--threads", default="2")
a = ap.parse_args()

SPLITS = ["val", "test_iid", "test"]
TYPES = ["count", "exist", "query_color", "query_shape", "query_size", "relation"]
if not os.path.isfile(os.path.join(a.model, "mmproj.gguf")):
    sys.exit(f"vlm_eval: {a.model}/mmproj.gguf: missing (hint: make vlm-model)")
res = {}
for s in SPLITS:
    for shuffle in (False, True):
        cmd = [a.bin, "vlm-eval", "-m", a.model, "--split", s, "--scenes", str(a.scenes), "--questions",
               str(a.questions), "-t", a.threads] + (["--shuffle-images"] if shuffle else [])
        res[(s, shuffle)] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        r = res[(s, shuffle)]
        print(f"{s:9s} {'shuffled' if shuffle else 'right   '} {r['accuracy']:.3f}  F1 {r['describe_f1']:.3f}", file=sys.stderr)

ev = {}
try:
    ev = json.load(open(os.path.join(a.model, "eval.json")))
except OSError:
    pass
md = ["# Vision-language model on the generated scenes (issue 20, item 5)", "",
      f"`bench/vlm_eval.py {a.bin} --scenes {a.scenes} --questions {a.questions}` on `{a.model}` "
      "(`make vlm-model`: scripts/vlm_model.sh — a CLIP-style tower on 64×64 images with 8×8 patches, LLaVA-1.5's "
      "projector (linear, GELU, linear) into a 4-layer Llama decoder of width 128 with a 512-token BPE learned on "
      "the task's text, trained end to end from scratch on 4,000 scenes' questions and descriptions, 7,000 steps of 16 sequences, seed 1; ~30 min on 2 cores). Answers are "
      "generated greedily through the runtime's prompt path (the same as `llmforge generate -m models/vlm --image "
      "F.png --chat -p \"...\"`) and must equal the answer word. **shuffled**: each question is shown another "
      "scene's image — what the question alone gives the model. Splits generated with seed 7; **test** holds the "
      "colour–shape combinations training never showed.", "",
      "| split | accuracy (right image) | accuracy (shuffled images) | description F1 (right) | F1 (shuffled) | exact descriptions |",
      "|---|---|---|---|---|---|"]
for s in SPLITS:
    r, q = res[(s, False)], res[(s, True)]
    md.append(f"| {s} | {r['accuracy']:.3f} | {q['accuracy']:.3f} | {r['describe_f1']:.3f} | {q['describe_f1']:.3f} | "
              f"{r['describe_exact']:.3f} |")
md += ["", "Accuracy per question type on **test** (right images / shuffled):", "",
       "| " + " | ".join(TYPES) + " |", "|" + "---|" * len(TYPES),
       "| " + " | ".join(f"{res[('test', False)]['per_type'][t]['accuracy']:.3f} / "
                         f"{res[('test', True)]['per_type'][t]['accuracy']:.3f}" for t in TYPES) + " |", ""]
os.makedirs(a.out, exist_ok=True)
open(os.path.join(a.out, "vlm-eval.md"), "w").write("\n".join(md))

W, H, pad = 640, 300, 50
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<text x="{W/2}" y="18" text-anchor="middle" font-size="14">VLM answer accuracy: right vs shuffled images</text>']
plot_h = H - 2 * pad
for i in range(6):
    y = H - pad - plot_h * i / 5
    svg.append(f'<line x1="{pad}" y1="{y}" x2="{W-10}" y2="{y}" stroke="#ddd"/><text x="{pad-6}" y="{y+4}" text-anchor="end">{i/5:.1f}</text>')
gw = (W - pad - 20) / len(SPLITS)
for si, s in enumerate(SPLITS):
    x0 = pad + si * gw + 20
    bw = (gw - 40) / 2
    for k, (shuffle, col) in enumerate(((False, "#3b7dd8"), (True, "#999999"))):
        acc = res[(s, shuffle)]["accuracy"]
        h = plot_h * acc
        svg.append(f'<rect x="{x0 + k*bw:.1f}" y="{H-pad-h:.1f}" width="{bw-4:.1f}" height="{h:.1f}" fill="{col}"/>')
        svg.append(f'<text x="{x0 + k*bw + (bw-4)/2:.1f}" y="{H-pad-h-3:.1f}" text-anchor="middle" font-size="10">{acc:.2f}</text>')
    svg.append(f'<text x="{x0 + bw:.1f}" y="{H-pad+16}" text-anchor="middle">{s}</text>')
svg.append(f'<rect x="{pad}" y="{H-18}" width="10" height="10" fill="#3b7dd8"/><text x="{pad+14}" y="{H-9}">right image</text>')
svg.append(f'<rect x="{pad+140}" y="{H-18}" width="10" height="10" fill="#999999"/><text x="{pad+154}" y="{H-9}">shuffled images</text>')
svg.append("</svg>")
open(os.path.join(a.out, "vlm-eval.svg"), "w").write("\n".join(svg))
print("\n".join(md))
