"""Training-step cost of the WSI models against the cost floor, over bag sizes.

Each (model, N) runs in a fresh subprocess (so the peak memory is that model's alone) through
``kemm.models.benchmark.bench_step`` -- the function behind ``kemm bench step``. Prints a table of
median step seconds, multiples of the ``floor`` model (one Linear(D->d) forward + backward over
the bag) and peak memory (CPU: process peak RSS incl. the input bag; CUDA: max allocated).

    python benchmarks/bench_step.py                       # N in {8k, 32k, 128k}, D = 1024
    python benchmarks/bench_step.py --patches 131072 --models floor kemm --repeats 3 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = (
    "import json, sys, torch\n"
    "args = json.loads(sys.argv[1])\n"
    "threads = args.pop('threads')\n"
    "if threads: torch.set_num_threads(threads)\n"
    "from kemm.models.benchmark import bench_step\n"
    "print(json.dumps(bench_step(**args)))\n"
)
MODELS = ["floor", "abmil", "mcat", "survpath", "porpoise", "kemm"]


def run_one(model: str, patches: int, args: argparse.Namespace) -> dict:
    payload = {
        "model": model,
        "patches": patches,
        "features": args.features,
        "device": args.device,
        "steps": args.steps,
        "warmup": args.warmup,
        "amp": args.amp,
        "threads": args.threads,
    }
    # idle OpenMP workers sleep instead of spinning: on a shared CPU spinning starves the run
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(payload)],
        env=env,
        capture_output=True,
        text=True,
        timeout=args.timeout,
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"model": model, "patches": patches, "error": " | ".join(tail)}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patches", type=int, nargs="+", default=[8192, 32768, 131072])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--features", type=int, default=1024)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads per run")
    parser.add_argument("--repeats", type=int, default=1, help="sweeps; medians are reported")
    parser.add_argument("--timeout", type=int, default=1800)
    parser.add_argument("--json", help="also write all raw results to this file")
    args = parser.parse_args(argv)
    if "floor" not in args.models:
        args.models = ["floor", *args.models]

    raw: list[dict] = []
    for rep in range(args.repeats):
        for n in args.patches:
            for model in args.models:
                res = run_one(model, n, args)
                res["repeat"] = rep
                raw.append(res)
                load = os.getloadavg()[0]
                shown = res.get("step_seconds", res.get("error"))
                print(f"[{rep}] {model:>9s} N={n:>7d}: {shown}  (load {load:.1f})", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(raw, fh, indent=1)

    def med(model: str, n: int, key: str) -> float | None:
        vals = [r[key] for r in raw if r["model"] == model and r["patches"] == n and key in r]
        return statistics.median(vals) if vals else None

    device = next((r["device"] for r in raw if "device" in r), args.device)
    print(
        f"\ntraining step, D={args.features}, device={device}, threads={args.threads or 'default'}"
    )
    print(f"{'model':>10s} " + " ".join(f"{f'N={n}':>26s}" for n in args.patches))
    for model in args.models:
        cells = []
        for n in args.patches:
            sec, floor, peak = med(model, n, "step_seconds"), med("floor", n, "step_seconds"), None
            peak = med(model, n, "peak_mb")
            if sec is None:
                cells.append(f"{'error':>26s}")
                continue
            ratio = f"{sec / floor:.2f}x" if floor else "?"
            mem = f"{peak:.0f}MB" if peak is not None else "?"
            cells.append(f"{sec:8.3f}s {ratio:>7s} {mem:>9s}")
        print(f"{model:>10s} " + " ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
