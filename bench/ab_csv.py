#!/usr/bin/python3
"""Turns the raw lines that bench/ab.sh prints on stderr ("TYPE THREADS pp|tg OURS_MMAP1 OURS_MMAP0
LLAMA") into the CSV that scripts/plot_bench.sh draws: medians over rounds, one row per engine and
loader.   bench/ab.sh 2> raw.txt; bench/ab_csv.py SHAPE raw.txt > bench.csv"""
import collections, statistics, sys

shape, path = sys.argv[1], sys.argv[2]
rows = collections.OrderedDict()
for line in open(path):
    f = line.split()
    if len(f) != 6:
        continue
    rows.setdefault(tuple(f[:3]), []).append([float(x) for x in f[3:]])
print("engine,shape,type,threads,mmap,test,mean,sd")
for (typ, threads, test), vals in rows.items():
    med = [statistics.median(v[i] for v in vals) for i in range(3)]
    name = "pp512" if test == "pp" else "tg128"
    print(f"llmforge,{shape},{typ},{threads},1,{name},{med[0]:.1f},")
    print(f"llmforge,{shape},{typ},{threads},0,{name},{med[1]:.1f},")
    print(f"llama.cpp,{shape},{typ},{threads},1,{name},{med[2]:.1f},")
