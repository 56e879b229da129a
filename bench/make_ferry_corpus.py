#!/usr/bin/env python3
"""A small synthetic corpus on a topic the default model has never seen (a harbour's ferry
timetable), for the fine-tuning experiments of bench/finetune_experiments.sh. Every island has
fixed facts (departure time, pier, fare, crossing time), stated in varied sentences, so a model
can learn them and a held-out split measures whether it did.

    bench/make_ferry_corpus.py --docs 600 --seed 1 --text OUT.txt --jsonl OUT.jsonl [--chat]

--text writes documents separated by blank lines (llmforge prepare's text format); --jsonl writes
{"text": ...} lines, or with --chat {"messages": [...]} question/answer dialogues.
Deterministic for a seed (Python's random.Random)."""
import argparse, json, random

ISLANDS = {
    "Aland Rock": ("7:15", 3, 12, 40),
    "Brisk Holm": ("8:40", 1, 9, 25),
    "Corran Isle": ("10:05", 4, 15, 55),
    "Dunmore Key": ("11:30", 2, 7, 20),
    "Eskar Bay": ("13:20", 5, 18, 70),
    "Fenwick Cay": ("15:45", 6, 11, 35),
}
NAMES = ["Mia", "Leo", "Ava", "Sam", "Zoe", "Max", "Ida", "Tom"]


def sentence(rng, island):
    t, pier, fare, mins = ISLANDS[island]
    forms = [
        f"The ferry to {island} leaves at {t} from pier {pier}.",
        f"A ticket to {island} costs {fare} euros.",
        f"The crossing to {island} takes {mins} minutes.",
        f"Boats for {island} depart from pier {pier} at {t} every day.",
        f"If you travel to {island}, the fare is {fare} euros and the trip takes {mins} minutes.",
    ]
    return rng.choice(forms)


def document(rng):
    island = rng.choice(sorted(ISLANDS))
    who = rng.choice(NAMES)
    parts = [f"{who} checked the harbour timetable."] + [sentence(rng, island) for _ in range(rng.randint(2, 4))]
    return " ".join(parts)


def dialogue(rng):
    island = rng.choice(sorted(ISLANDS))
    t, pier, fare, mins = ISLANDS[island]
    q, a = rng.choice([
        (f"When does the ferry to {island} leave?", f"The ferry to {island} leaves at {t} from pier {pier}."),
        (f"How much is a ticket to {island}?", f"A ticket to {island} costs {fare} euros."),
        (f"How long is the crossing to {island}?", f"The crossing to {island} takes {mins} minutes."),
        (f"Which pier is the boat to {island}?", f"Boats for {island} depart from pier {pier} at {t}."),
    ])
    return {"messages": [{"role": "system", "content": "You are the harbour's information desk. Answer briefly."},
                         {"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=600)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--text")
    ap.add_argument("--jsonl")
    ap.add_argument("--chat", action="store_true")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    items = [dialogue(rng) if a.chat else document(rng) for _ in range(a.docs)]
    if a.text:
        with open(a.text, "w") as f:
            f.write("\n\n".join(items if not a.chat else [json.dumps(i) for i in items]) + "\n")
    if a.jsonl:
        with open(a.jsonl, "w") as f:
            for i in items:
                f.write(json.dumps(i if a.chat else {"text": i}) + "\n")


if __name__ == "__main__":
    main()
