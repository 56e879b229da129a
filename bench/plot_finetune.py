#!/usr/bin/env python3
"""Pictures of bench/finetune_experiments.sh: plot_finetune.py OUT_DIR DOCS_DIR
   OUT_DIR/continual.csv -> DOCS_DIR/finetune-continual.svg (task-A and task-B validation loss
   before and after learning task B, per method); OUT_DIR/robust.csv -> DOCS_DIR/finetune-robust.svg
   (held-out validation loss per method). Plain SVG, no plotting library."""
import csv, os, sys


def bars(path, title, groups, series, colors, ylabel):
    """groups: [(label, {series: value})]"""
    W, H, L, T, B = 780, 380, 70, 50, 80
    top = max(v for _, vals in groups for v in vals.values()) * 1.15 or 1
    gw = (W - L - 20) / max(1, len(groups))
    bw = gw * 0.8 / len(series)
    y = lambda v: T + (H - T - B) * (1 - v / top)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{L}" y="22" font-size="14">{title}</text>',
           f'<text x="14" y="{(H - B + T) / 2}" transform="rotate(-90 14 {(H - B + T) / 2})">{ylabel}</text>',
           f'<line x1="{L}" y1="{H - B}" x2="{W - 10}" y2="{H - B}" stroke="black"/>']
    for k in range(6):
        v = top * k / 5
        out.append(f'<line x1="{L - 4}" y1="{y(v):.1f}" x2="{W - 10}" y2="{y(v):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{L - 8}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.2f}</text>')
    for i, (label, vals) in enumerate(groups):
        x0 = L + i * gw + gw * 0.1
        for j, s in enumerate(series):
            if s not in vals: continue
            v = vals[s]
            out.append(f'<rect x="{x0 + j * bw:.1f}" y="{y(v):.1f}" width="{bw - 2:.1f}" height="{y(0) - y(v):.1f}" '
                       f'fill="{colors[j]}"><title>{label} {s}: {v:.4f}</title></rect>')
            out.append(f'<text x="{x0 + j * bw + bw / 2 - 1:.1f}" y="{y(v) - 3:.1f}" text-anchor="middle" '
                       f'font-size="10">{v:.2f}</text>')
        out.append(f'<text x="{x0 + gw * 0.4:.1f}" y="{H - B + 16}" text-anchor="middle">{label}</text>')
    for j, s in enumerate(series):
        out.append(f'<rect x="{L + j * 190}" y="{H - 30}" width="12" height="12" fill="{colors[j]}"/>')
        out.append(f'<text x="{L + j * 190 + 18}" y="{H - 20}">{s}</text>')
    out.append('</svg>')
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    src, docs = sys.argv[1], sys.argv[2]
    c = os.path.join(src, "continual.csv")
    if os.path.exists(c):
        rows = list(csv.DictReader(open(c)))
        groups = [("before", {"task A (shop) val loss": float(rows[0]["a_before"]),
                              "task B (ferry) val loss": float(rows[0]["b_before"])})]
        groups += [(r["method"], {"task A (shop) val loss": float(r["a_after"]),
                                  "task B (ferry) val loss": float(r["b_after"])}) for r in rows]
        bars(os.path.join(docs, "finetune-continual.svg"),
             "Default model learns task B: forgetting of task A per method (lower is better)",
             groups, ["task A (shop) val loss", "task B (ferry) val loss"], ["#4878cf", "#e8a33c"], "validation loss (nats)")
    r = os.path.join(src, "robust.csv")
    if os.path.exists(r):
        rows = list(csv.DictReader(open(r)))
        groups = [("base", {"held-out val loss": float(rows[0]["val_before"])})]
        groups += [(x["method"], {"held-out val loss": float(x["val_after"]),
                                  "last train loss": float(x["train_loss_last"])}) for x in rows]
        bars(os.path.join(docs, "finetune-robust.svg"),
             "LoRA SFT on 24 dialogues: held-out loss with FGM / EDA augmentation (lower is better)",
             groups, ["held-out val loss", "last train loss"], ["#4878cf", "#bbbbbb"], "loss (nats)")


if __name__ == "__main__":
    main()
