"""Genomic features grouped by gene name into gene families or pathways."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kemm.cohort.table import GENOMIC_MODALITIES, gene_of, genomic_modality
from kemm.errors import InputDataError
from kemm.io import read_csv

# Names of the signature files shipped with the MCAT/SurvPath data layout.
SIGNATURE_FILES = {
    "families": "gene_families.csv",
    "hallmarks": "hallmarks_signatures.csv",
    "combine": "combine_signatures.csv",
}


@dataclass(frozen=True)
class GenomicGroup:
    name: str
    features: tuple[str, ...]


@dataclass
class GroupingReport:
    """What the grouping found: sizes, genes of each signature absent from the data."""

    signature_file: str | None
    sizes: dict[str, int] = field(default_factory=dict)
    genes_not_found: dict[str, list[str]] = field(default_factory=dict)
    dropped_empty_groups: list[str] = field(default_factory=list)
    features_in_no_group: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "signature_file": self.signature_file,
            "sizes": self.sizes,
            "genes_not_found_count": {k: len(v) for k, v in self.genes_not_found.items()},
            "dropped_empty_groups": self.dropped_empty_groups,
            "features_in_no_group": self.features_in_no_group,
        }


def read_signatures(path: str | Path) -> dict[str, list[str]]:
    """A signature CSV: one column per group, gene symbols down the column (NaN-padded)."""
    path = Path(path)
    frame = read_csv(path, what="signature file")
    groups = {
        str(column): [str(g).strip() for g in frame[column].dropna() if str(g).strip()]
        for column in frame.columns
    }
    if not groups:
        raise InputDataError("no signature columns", file=str(path))
    return groups


def group_features(
    feature_columns: Sequence[str],
    signatures: dict[str, list[str]],
    *,
    modalities: Sequence[str] = GENOMIC_MODALITIES,
    signature_file: str | None = None,
    on_empty: str = "error",
) -> tuple[list[GenomicGroup], GroupingReport]:
    """Assign every ``<GENE>_<modality>`` feature to the groups listing GENE (by name).

    A group with no matching feature raises :class:`InputDataError` (``on_empty="error"``) or is
    dropped and listed in the report (``on_empty="drop"``, the usual choice for hundreds of
    pathways on a cancer-gene panel).
    """
    if on_empty not in ("error", "drop"):
        raise ValueError("on_empty must be 'error' or 'drop'")
    by_gene: dict[str, list[str]] = {}
    for column in feature_columns:
        if genomic_modality(column) in set(modalities):
            by_gene.setdefault(gene_of(column), []).append(column)
    report = GroupingReport(signature_file)
    groups: list[GenomicGroup] = []
    assigned: set[str] = set()
    for name, genes in signatures.items():
        features = [f for gene in dict.fromkeys(genes) for f in by_gene.get(gene, [])]
        report.genes_not_found[name] = [g for g in genes if g not in by_gene]
        if not features:
            if on_empty == "error":
                raise InputDataError(
                    f"genomic group {name!r} is empty: none of its {len(genes)} genes has a "
                    f"{'/'.join(modalities)} column in the cohort",
                    file=signature_file,
                )
            report.dropped_empty_groups.append(name)
            continue
        groups.append(GenomicGroup(name, tuple(features)))
        report.sizes[name] = len(features)
        assigned.update(features)
    report.features_in_no_group = sum(len(v) for v in by_gene.values()) - len(assigned)
    if not groups:
        raise InputDataError("no genomic group has any feature in the cohort", file=signature_file)
    return groups, report


def single_group(feature_columns: Sequence[str], modalities: Sequence[str]) -> list[GenomicGroup]:
    """All features of the given modalities as one group (for models that take a flat vector)."""
    features = tuple(c for c in feature_columns if genomic_modality(c) in set(modalities))
    if not features:
        raise InputDataError(f"the cohort has no {'/'.join(modalities)} genomic features")
    return [GenomicGroup("all", features)]
