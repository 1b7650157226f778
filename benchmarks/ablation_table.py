"""The model card's ablation table from the ``bench_models.py --json`` files that ``ablation_pair.sh`` writes.

    python benchmarks/ablation_table.py runs/abl-test*.json

Each variant's test figures beside the full recipe's (the run called ``abl-all``), with the difference; the
peer's row once. Reads only the JSON files: nothing is measured or chosen here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SOURCES = ("ccp", "hs", "pennfudan")  # the sources with 20 or more test images


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("json", nargs="+", type=Path)
    p.add_argument("--reference", default="abl-all", help="the run the differences are taken against")
    args = p.parse_args(argv)
    rows: dict[str, dict] = {}
    for f in args.json:
        for r in json.loads(f.read_text()):
            seen = rows.setdefault(r["model"], r)  # the peer appears in every file, with the same quality figures
            if seen is not r and (seen["iou"], seen["free_area"]) != (r["iou"], r["free_area"]):
                p.error(f"{r['model']} has different figures in two files: pass the files of one split")
    ref = rows[args.reference]
    cols = ["mean IoU", *SOURCES, "boundary F", "people-free area", "rooms > 1 %"]
    print("| run | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))

    def figures(r: dict) -> list[tuple[float, str]]:  # (value, format) per column; shares in percent
        return ([(r["iou"], ".4f"), *((r["iou_by_source"][s], ".4f") for s in SOURCES), (r["boundary_f"], ".4f"),
                 (100 * r["free_area"], ".2f"), (100 * r["free_over_1"], ".1f")])

    def cells(r: dict, diff: bool) -> list[str]:
        out = []
        for (v, fmt), (rv, _) in zip(figures(r), figures(ref)):
            unit = " %" if fmt != ".4f" else ""
            out.append(f"{v:{fmt}}{unit}" + (f" ({v - rv:+{fmt}})" if diff else ""))
        return out

    peer = [name for name in rows if not name.startswith("abl-")]
    order = [args.reference] + sorted(n for n in rows if n.startswith("abl-") and n != args.reference) + peer
    for name in order:
        print(f"| {name} | " + " | ".join(cells(rows[name], name.startswith("abl-") and name != args.reference)) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
