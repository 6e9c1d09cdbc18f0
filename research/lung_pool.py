"""Pools runs of ``examples/lung_xray.py`` (one ``metrics.json`` per invocation) into one table.

The lung study runs one training at a time on a CPU (``--seeds 1 --seed S
--split-seed K``, an arm or two per invocation), so its answer is spread over
several files. This reads them, groups the runs by arm, and prints a Markdown
table over every run of an arm (seeds and splits): validation Dice with the
mirror TTA as mean and standard deviation, plain predictions, post-processed,
the worst film, and each shift. Against ``--reference`` it adds the paired test
per film: each film's Dice averaged over the seeds of its split, films of
different splits counted apart, Wilcoxon signed-rank over films.

    python research/lung_pool.py outputs/lung_cmp_s0/metrics.json outputs/lung_cmp_s1/metrics.json \\
        outputs/lung_lite0_s0/metrics.json:lite0 --reference all --out outputs/lung_pool.json

``PATH:LABEL`` renames the arms of that file to LABEL (for a file of one arm,
e.g. a run with ``--encoder``); otherwise arms keep the example's names.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from keras_unetpp.evaluation import paired_comparison

SHIFTS = ("rotated +10", "rotated -10", "brighter", "low contrast", "noisy", "low resolution")


def load_runs(specs: list[str]) -> dict:
    """``{arm: [run, ...]}``, each run tagged with its split seed."""
    runs = defaultdict(list)
    for spec in specs:
        path, _, label = spec.partition(":") if not Path(spec).is_file() else (spec, "", "")
        payload = json.loads(Path(path).read_text())
        if label and len(payload["runs"]) != 1:
            raise SystemExit(f"{path}: a label renames a file of one arm; this one has {sorted(payload['runs'])}.")
        for arm, seeds in payload["runs"].items():
            for run in seeds:
                runs[label or arm].append({**run, "split_seed": payload["split_seed"], "source": path})
    return dict(runs)


def film_means(runs: list) -> dict:
    """``{(split, film): Dice averaged over the seeds of that split}``."""
    values = defaultdict(list)
    for run in runs:
        for film, scores in run["per_image"].items():
            values[(run["split_seed"], film)].append(scores["dice"])
    return {key: float(np.mean(v)) for key, v in values.items()}


def mean_sd(values) -> str:
    values = np.asarray(values, np.float64)
    return f"{values.mean():.3f} +- {values.std(ddof=1):.3f}" if len(values) > 1 else f"{values.mean():.3f}"


def table(runs: dict, reference: str | None) -> tuple[str, dict]:
    header = ["arm", "runs (seed/split)", "Dice, TTA", "plain", "post-processed", "worst film", *SHIFTS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    comparisons = {}
    for arm, arm_runs in runs.items():
        row = [arm, " ".join(f"{r['seed']}/{r['split_seed']}" for r in arm_runs),
               mean_sd([r["overall"]["dice"] for r in arm_runs]),
               mean_sd([r["overall_without_tta"]["dice"] for r in arm_runs if "overall_without_tta" in r]),
               mean_sd([r["overall_postprocessed"]["dice"] for r in arm_runs]),
               mean_sd([min(s["dice"] for s in r["per_image"].values()) for r in arm_runs])]
        row += [mean_sd([np.mean(list(r["shifts"][c]["dice"].values())) for r in arm_runs]) for c in SHIFTS]
        lines.append("| " + " | ".join(row) + " |")
    if reference is not None:
        if reference not in runs:
            raise SystemExit(f"--reference {reference!r} is not among the arms {sorted(runs)}.")
        base = film_means(runs[reference])
        for arm, arm_runs in runs.items():
            if arm == reference:
                continue
            other = film_means(arm_runs)
            common = sorted(set(base) & set(other))
            comparisons[arm] = paired_comparison({k: {"dice": other[k]} for k in common},
                                                 {k: {"dice": base[k]} for k in common}, key="dice")
    return "\n".join(lines), comparisons


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("metrics", nargs="+", help="metrics.json of lung_xray.py runs, PATH or PATH:LABEL")
    parser.add_argument("--reference", default=None, help="arm the others are compared with, film by film")
    parser.add_argument("--out", type=Path, default=None, help="also write the table and tests as JSON")
    args = parser.parse_args(argv)
    runs = load_runs(args.metrics)
    markdown, comparisons = table(runs, args.reference)
    print(markdown)
    for arm, c in comparisons.items():
        print(f"{arm} against {args.reference}: Dice per film {c['mean_dice_change']:+.4f} on average, better on "
              f"{c['cases_better']} of {c['cases']} films, worse on {c['cases_worse']}, "
              f"Wilcoxon p = {c['wilcoxon_p']:.2g}")
    if args.out is not None:
        args.out.write_text(json.dumps({"table": markdown, "comparisons": comparisons,
                                        "sources": args.metrics}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
