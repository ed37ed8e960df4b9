"""Per-source harmonisation before corpus building: gene ids onto the canonical vocabulary, obs column names.

Genes: every source's ids go through ``GeneTable.map``. Ids that map to the
same canonical gene (duplicates in the file, or e.g. an alias and a symbol of
one gene) are summed; unmapped and ambiguous ids are kept under their
original id (``unmapped="keep"``, the default) or dropped (``"drop"``), and
ERCC spike-ins are dropped by default. Every decision is counted in the
summary.

Obs: known metadata columns are renamed to the corpus' standard columns
(batch, cell_type, condition, perturbation); ``obs_map`` adds user rules.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

STANDARD_COLUMNS = ("batch", "cell_type", "condition", "perturbation")
# source column names recognised per standard column, in priority order (matched case-insensitively)
KNOWN_COLUMNS = {
    "batch": ("batch", "bio_rep", "replicate", "rep", "donor", "batch_id"),
    "cell_type": ("cell_type", "celltype", "cell_types", "annotation", "cell_line", "cell_line_demuxlet",
                  "cell_ontology_class"),
    "condition": ("condition", "stim", "treatment", "stimulation"),
    "perturbation": ("perturbation", "grna_target", "target_gene", "gene_target", "guide_target", "target"),
}
_ENSEMBL = re.compile(r"^(ENSG\d{11})(\.\d+)?$", re.IGNORECASE)
_SPIKE = re.compile(r"^ERCC-\d+$", re.IGNORECASE)


@dataclass
class GeneMapping:
    """How one source's g columns become its g' canonical genes.

    ``aggregate``: CSR (g, g') 0/1 matrix; counts (n, g) @ aggregate sums columns
    that land on the same gene and drops columns with no target.
    ``symbols``/``ensembl``: the g' canonical names (vocabulary keys) and Ensembl ids ("" unknown).
    ``summary``: counts for the report.
    """

    aggregate: sp.csr_matrix
    symbols: list[str]
    ensembl: list[str]
    summary: dict


def _identity_map(ids: list[str]) -> pd.DataFrame:
    """The ``--gene-table none`` mapping: every id is its own gene."""
    ens = [(_ENSEMBL.match(i).group(1).upper() if _ENSEMBL.match(i) else "") for i in ids]
    return pd.DataFrame({"input": ids, "symbol": ids, "ensembl_id": ens, "status": "mapped", "how": "as given",
                         "candidates": ""})


def map_genes(ids, table=None, unmapped: str = "keep", drop_spike_ins: bool = True) -> GeneMapping:
    """Map a source's gene ids (length g) onto canonical genes; see the module docstring."""
    if unmapped not in ("keep", "drop"):
        raise ValueError(f"unmapped must be 'keep' or 'drop', got {unmapped!r}")
    ids = [str(i).strip() for i in ids]
    res = table.map(ids) if table is not None else _identity_map(ids)
    status = res["status"].to_numpy()
    spike = np.array([bool(_SPIKE.match(i)) for i in ids], dtype=bool) & drop_spike_ins
    keys: list[str | None] = []
    ens_of: dict[str, str] = {}
    for i, (orig, sym, ens, st) in enumerate(zip(ids, res["symbol"], res["ensembl_id"], status)):
        if spike[i] or (st != "mapped" and unmapped == "drop") or not orig:
            keys.append(None)
            continue
        key = sym if st == "mapped" else orig
        if st != "mapped":
            m = _ENSEMBL.match(orig)
            ens = m.group(1).upper() if m else ""
        keys.append(key)
        if ens and not ens_of.get(key):
            ens_of[key] = ens
        ens_of.setdefault(key, "")
    uniq = list(dict.fromkeys(k for k in keys if k is not None))
    col = {k: j for j, k in enumerate(uniq)}
    rows = np.array([i for i, k in enumerate(keys) if k is not None], dtype=np.int64)
    cols = np.array([col[keys[i]] for i in rows], dtype=np.int64)
    agg = sp.csr_matrix((np.ones(rows.size, dtype=np.int64), (rows, cols)), shape=(len(ids), len(uniq)))
    per_target = np.bincount(cols, minlength=len(uniq)) if cols.size else np.zeros(0, dtype=np.int64)
    dup_ids = pd.Index(ids)
    merged_examples = [uniq[j] for j in np.flatnonzero(per_target > 1)[:10]]
    not_mapped = ~(status == "mapped") & ~spike
    summary = {
        "input_ids": len(ids),
        "mapped": int(((status == "mapped") & ~spike).sum()),
        "ambiguous": int(((status == "ambiguous") & ~spike).sum()),
        "unmapped": int(((status == "unmapped") & ~spike).sum()),
        "unmapped_policy": unmapped,
        "kept_under_original_id": int(not_mapped.sum()) if unmapped == "keep" else 0,
        "dropped_not_mapped": int(not_mapped.sum()) if unmapped == "drop" else 0,
        "dropped_spike_ins": int(spike.sum()),
        "duplicate_ids_in_file": int(dup_ids.duplicated().sum()),
        "genes_after_mapping": len(uniq),
        "genes_with_summed_inputs": int((per_target > 1).sum()),
        "summed_examples": merged_examples,
        "unmapped_examples": [ids[i] for i in np.flatnonzero(not_mapped)[:10]],
        "gene_table": "none (ids kept as given)" if table is None else "GeneTable",
    }
    return GeneMapping(agg, uniq, [ens_of[k] for k in uniq], summary)


def parse_obs_map(rules: list[str] | None) -> list[tuple[str | None, str, str]]:
    """``["grna=perturbation", "kang2018:stim=condition"]`` -> [(dataset or None, column, target)]."""
    out = []
    for rule in rules or []:
        if "=" not in rule:
            raise ValueError(f"--obs-map {rule!r}: expected COLUMN=TARGET or DATASET:COLUMN=TARGET")
        left, target = rule.split("=", 1)
        dataset, column = left.split(":", 1) if ":" in left else (None, left)
        if not column or not target:
            raise ValueError(f"--obs-map {rule!r}: column and target must be non-empty")
        out.append((dataset, column, target))
    return out


def normalise_obs(obs: pd.DataFrame, dataset: str, rules: list[tuple[str | None, str, str]] = ()) -> tuple[pd.DataFrame, dict]:
    """Standard per-sample metadata (n rows) and which source column fed each standard column.

    Output columns: sample_id (``dataset:original id``), batch (when known),
    cell_type, condition, perturbation ("" when unknown), plus any extra
    targets named by ``rules``. User rules win over the built-in names.
    """
    lower = {str(c).lower(): c for c in obs.columns}
    chosen: dict[str, str] = {}
    for ds, column, target in rules:
        if (ds is None or ds == dataset) and column in obs.columns:
            chosen[target] = column
    for target, names in KNOWN_COLUMNS.items():
        if target in chosen:
            continue
        for n in names:
            if n in lower:
                chosen[target] = lower[n]
                break
    out = pd.DataFrame({"sample_id": [f"{dataset}:{i}" for i in obs.index]})
    for target in list(STANDARD_COLUMNS) + [t for t in chosen if t not in STANDARD_COLUMNS]:
        if target in chosen:
            vals = obs[chosen[target]].astype(object).where(obs[chosen[target]].notna(), "")
            out[target] = vals.astype(str).to_numpy()
        elif target != "batch":
            out[target] = ""
    return out, chosen
