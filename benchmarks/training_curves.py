"""Training loss and inner-validation C-index against epochs, on training folds only.

    python benchmarks/training_curves.py [--data-root ../shared/data] [--cohort kirc]
        [--model "KEMM −linear part (paper's inputs)"] [--epochs 30] [--out docs/figures]

For each outer training fold of the benchmark's ``families`` variant, a 3-fold inner split of
that training fold: the network (the benchmark's settings, its loss) trains on two inner parts
for ``--epochs`` epochs and is scored on the third after every epoch. The evaluation fold is
never read. Prints the mean training loss and inner-validation C per epoch, and writes a PNG
(``<out>/training_curves_<cohort>.png``) with the benchmark's fixed epoch count marked, so a
reader sees where training stops.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def curves(
    data_root: Path, cohort: str, label: str, epochs: int, inner_folds: int = 3
) -> pd.DataFrame:
    from sklearn.model_selection import StratifiedKFold

    from kemm.cohort import prepare_cohort
    from kemm.cohort.text import load_text_modality
    from kemm.device import resolve_device
    from kemm.engine import benchmark as bench
    from kemm.engine.data import FoldInputs, FoldPreprocessor
    from kemm.engine.fold_models import network_dims, used_modalities
    from kemm.engine.runner import fold_seed
    from kemm.engine.trainer import fit_bins, seed_everything, train_model
    from kemm.models.registry import create
    from kemm.survival import n_outputs

    entry = next(e for e in bench.ENTRIES if e.label == label)
    config = bench.variant_config(data_root, cohort, "families", [entry], Path("/tmp"),
                                  epochs=epochs, seed=0)  # fmt: skip
    spec = config.models[0]
    data = prepare_cohort(config.data, text_loader=load_text_modality)
    modalities = used_modalities(spec, data)
    device = resolve_device("cpu")
    rows = []
    for k, split in enumerate(data.splits):
        ids = [c for c in split.train if any(data.has_modality(c, m) for m in modalities)]
        target = data.cohort.subset(ids).target
        inner = StratifiedKFold(inner_folds, shuffle=True, random_state=fold_seed(0, k))
        for j, (fit, held) in enumerate(inner.split(np.zeros(len(ids)), target.event)):
            pre = FoldPreprocessor.fit(data, [ids[i] for i in fit])
            bins = fit_bins(data.cohort.subset([ids[i] for i in fit]).target, data.cohort.target,
                            config.train)  # fmt: skip
            dims = network_dims(pre.dims(data), modalities)
            seed_everything(fold_seed(0, k) * 10 + j)
            model = create(spec.name, dims=dims, n_bins=n_outputs(config.train.loss, bins.n_bins),
                           **spec.params)  # fmt: skip
            inputs = FoldInputs(data, pre, ids, modalities,
                                genomic_clip=config.train.genomic_clip)  # fmt: skip
            held = sorted(held.tolist())
            result = train_model(
                model, inputs, sorted(fit.tolist()), bins.transform(target.time),
                target.event.astype(np.float32), config.train, device, time=target.time,
                n_bins=bins.n_bins, val_positions=held, val_time=target.time[held],
            )  # fmt: skip
            for record in result.history:
                rows.append({"outer_fold": k, "inner_fold": j, "epoch": record["epoch"],
                             "loss": record["loss"], "survival_loss": record["survival"],
                             "inner_val_c": record["inner_val_c"]})  # fmt: skip
            print(f"training fold {k}, inner split {j}: best inner C "
                  f"{max(r['inner_val_c'] for r in result.history):.3f}", flush=True)  # fmt: skip
    return pd.DataFrame(rows)


def plot(frame: pd.DataFrame, path: Path, title: str, fixed_epochs: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mean = frame.groupby("epoch").mean(numeric_only=True)
    sem = frame.groupby("epoch").sem(numeric_only=True)
    fig, left = plt.subplots(figsize=(7, 4.2), dpi=120)
    left.plot(mean.index, mean["survival_loss"], color="tab:blue", label="training survival loss")
    left.set_xlabel("epoch")
    left.set_ylabel("training survival loss (Cox, per batch)", color="tab:blue")
    right = left.twinx()
    right.plot(mean.index, mean["inner_val_c"], color="tab:red", label="inner-validation C")
    right.fill_between(mean.index, mean["inner_val_c"] - sem["inner_val_c"],
                       mean["inner_val_c"] + sem["inner_val_c"], color="tab:red", alpha=0.15)  # fmt: skip
    right.set_ylabel("inner-validation Harrell C (mean ± s.e.)", color="tab:red")
    left.axvline(fixed_epochs, color="grey", linestyle="--")
    left.text(fixed_epochs + 0.3, left.get_ylim()[1], f"benchmark: {fixed_epochs} epochs",
              va="top", color="grey")  # fmt: skip
    left.set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    from kemm.engine.benchmark import EPOCHS, PAPER

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    parser.add_argument("--cohort", default="kirc")
    parser.add_argument("--model", default=PAPER)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("docs/figures"))
    args = parser.parse_args()
    frame = curves(args.data_root, args.cohort, args.model, args.epochs)
    mean = frame.groupby("epoch").mean(numeric_only=True)
    print("| epoch | training loss | survival loss | inner-validation C |")
    print("|---|---|---|---|")
    for epoch, row in mean.iterrows():
        print(
            f"| {epoch} | {row['loss']:.3f} | {row['survival_loss']:.3f} | {row['inner_val_c']:.3f} |"
        )
    best = int(mean["inner_val_c"].idxmax())
    print(f"best mean inner-validation C at epoch {best}: {mean['inner_val_c'].max():.3f}; "
          f"at {EPOCHS['full']} epochs: {mean.loc[EPOCHS['full'], 'inner_val_c']:.3f}")  # fmt: skip
    path = args.out / f"training_curves_{args.cohort}.png"
    plot(frame, path, f"{args.model}, TCGA-{args.cohort.upper()}\n5 training folds x 3 inner "
         "splits (evaluation folds unread)", EPOCHS["full"])  # fmt: skip
    frame.to_csv(args.out / f"training_curves_{args.cohort}.csv", index=False)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
