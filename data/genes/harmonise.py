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

from common.gene_ids import ensembl_species_code, human_ensembl_id

STANDARD_COLUMNS = ("batch", "cell_type", "condition", "perturbation")
# source column names recognised per standard column, in priority order (matched case-insensitively)
KNOWN_COLUMNS = {
    "batch": ("batch", "bio_rep", "replicate", "rep", "donor", "batch_id", "donor_id", "series_id"),
    "cell_type": ("cell_type", "celltype", "cell_types", "annotation", "cell_line", "cell_line_demuxlet",
                  "cell_ontology_class"),
    "condition": ("condition", "stim", "treatment", "stimulation", "disease"),
    "perturbation": ("perturbation", "grna_target", "target_gene", "gene_target", "guide_target", "target"),
}
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

    def apply(self, x: sp.spmatrix) -> sp.csr_matrix:
        """Counts (n, g) in the source's columns -> (n, g') in canonical genes (``x @ aggregate``, explicit
        zeros dropped). When no two source ids land on one gene, columns are relabelled instead of
        multiplied (indices then unsorted within rows)."""
        x = sp.csr_matrix(x)
        target = self._target()
        if target is None:
            y = sp.csr_matrix(x @ self.aggregate)
            y.eliminate_zeros()
            return y
        return relabel_columns(x, target, len(self.symbols))

    def _target(self) -> np.ndarray | None:
        """(g,) canonical column of each source column (-1: dropped), or None when some gene sums several."""
        if not hasattr(self, "_target_cache"):
            a = self.aggregate.tocsr()
            target = None
            if np.diff(a.indptr).max(initial=0) <= 1 and np.bincount(a.indices, minlength=a.shape[1]).max(initial=0) <= 1:
                target = np.full(a.shape[0], -1, dtype=np.int64)
                target[np.flatnonzero(np.diff(a.indptr))] = a.indices
            self._target_cache = target
        return self._target_cache


def relabel_columns(x: sp.csr_matrix, target: np.ndarray, n_cols: int) -> sp.csr_matrix:
    """CSR (n, n_cols) whose entry (i, target[j]) is x[i, j]; columns with target -1 are dropped and explicit
    zeros removed. ``target`` must not send two columns to one (then use a sum, ``x @ aggregate``)."""
    x = sp.csr_matrix(x)
    new = target[x.indices]
    keep = (new >= 0) & (x.data != 0)
    if keep.all():
        return sp.csr_matrix((x.data, new, x.indptr), shape=(x.shape[0], n_cols))
    kept = np.concatenate([[0], np.cumsum(keep)])
    return sp.csr_matrix((x.data[keep], new[keep], kept[x.indptr]), shape=(x.shape[0], n_cols))


def _identity_map(ids: list[str]) -> pd.DataFrame:
    """The ``--gene-table none`` mapping: every id is its own gene."""
    ens = [human_ensembl_id(i) or "" for i in ids]
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
            ens = human_ensembl_id(orig) or ""
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


def ids_with_name_fallback(ids, names, table=None) -> list[str]:
    """Per gene, its id, or its name where the table does not know the id but knows the name.

    Formats with two ids per gene (Census var: feature_id and feature_name; ARCHS4: Ensembl id and symbol)
    give the Ensembl id first: it maps unambiguously, and the symbol rescues ids newer than the table.
    """
    ids = [str(i).strip() for i in ids]
    if table is None or names is None:
        return ids
    names = [str(n).strip() for n in names]
    if len(names) != len(ids):
        raise ValueError(f"{len(names)} gene names for {len(ids)} gene ids")
    unknown = np.flatnonzero(table.map(ids)["status"].to_numpy() == "unmapped")
    out = list(ids)
    if unknown.size:
        by_name = table.map([names[i] for i in unknown])["status"].to_numpy()
        for i in unknown[by_name == "mapped"]:
            out[i] = names[i]
    return out


MIN_MAPPED_FRACTION = 0.5   # below: refused (--min-mapped-fraction lowers it)
WARN_MAPPED_FRACTION = 0.6  # below: a loud warning (the shared real datasets map 60-90%)
_PROBE = 2000               # ids looked at for the species and orientation checks


def _recognised(table, ids) -> float:
    """Fraction of ids the table knows (mapped or ambiguous)."""
    ids = [str(i).strip() for i in ids][:_PROBE]
    if not ids:
        return 0.0
    return float((table.map(ids)["status"] != "unmapped").mean())


def _species_of_ids(ids) -> tuple[str | None, float, list[str]]:
    """(species, fraction, examples) when the ids look like another species' (mouse-case symbols,
    ENSMUSG and other non-human Ensembl ids); (None, 0, []) otherwise."""
    from data.genes.table import MOUSE_SYMBOL
    ids = [str(i).strip() for i in ids][:_PROBE]
    if not ids:
        return None, 0.0, []
    codes = [ensembl_species_code(i) for i in ids]           # '' human, 'MUS' mouse, None not an Ensembl id
    ens = [c for c in codes if c]
    mouse_sym = [i for i in ids if MOUSE_SYMBOL.match(i)]
    if len(ens) / len(ids) >= 0.5:
        code = pd.Series(ens).value_counts().index[0]
        species = {"MUS": "mouse", "RNO": "rat", "DAR": "zebrafish", "MMU": "macaque"}.get(code, f"ENS{code}G")
        return species, len(ens) / len(ids), [i for i, c in zip(ids, codes) if c][:3]
    if len(mouse_sym) / len(ids) >= 0.5:
        return "mouse", len(mouse_sym) / len(ids), mouse_sym[:3]
    return None, 0.0, []


def check_gene_ids(ids, sample_ids, table, where: str, mapping_summary: dict | None = None,
                   min_mapped_fraction: float = MIN_MAPPED_FRACTION, other_axis_fix: str = "",
                   log=None) -> None:
    """Refuse gene ids that cannot be what they claim, each in one line naming ``where``:

    - another species (>= 50% mouse-case symbols like Cd74, or ENSMUSG/other non-human Ensembl
      ids) unless the gene table is of that species -- such symbols would map to human genes by case;
    - a transposed matrix: the gene axis maps poorly (< min_mapped_fraction) while the sample ids
      map (>= 50%) -- ``other_axis_fix`` says how to turn it (e.g. --orientation);
    - too few ids mapped (fraction of mapped + ambiguous < ``min_mapped_fraction``); a warning
      line through ``log`` when below WARN_MAPPED_FRACTION.
    Nothing is checked without a table (``--gene-table none`` keeps ids as given).
    """
    if table is None:
        return
    ids = [str(i).strip() for i in ids]
    species, frac, examples = _species_of_ids(ids)
    table_species = getattr(table, "species", "human")
    if species is not None and species != table_species:
        raise ValueError(f"{where}: {100 * frac:.0f}% of the gene ids look {species} (e.g. {examples}) but the gene "
                         f"table is {table_species}; such ids would map to {table_species} genes by case or not at "
                         f"all. Use {table_species} data, or pass a {species} gene table with --gene-table")
    if mapping_summary is not None:
        n = max(mapping_summary["input_ids"] - mapping_summary["dropped_spike_ins"], 1)
        known = (mapping_summary["mapped"] + mapping_summary["ambiguous"]) / n
        n_known = mapping_summary["mapped"] + mapping_summary["ambiguous"]
    else:
        known = _recognised(table, ids)
        n, n_known = len(ids), int(round(known * len(ids)))
    if known >= min_mapped_fraction and known >= WARN_MAPPED_FRACTION:
        return
    # sample ids that are plain numbers (1, 2, 3) would read as Entrez ids: they say nothing here
    labels = [str(x) for x in list(sample_ids if sample_ids is not None else [])[:_PROBE] if not str(x).isdigit()]
    if known < min_mapped_fraction and labels:
        other = _recognised(table, labels)
        if other >= 0.5 and other > known:
            raise ValueError(f"{where}: the gene ids are on the other axis: {100 * known:.0f}% of the gene-axis "
                             f"labels map to the gene table but {100 * other:.0f}% of the sample ids do (e.g. "
                             f"{[str(x) for x in list(sample_ids)[:3]]}); the matrix is transposed. "
                             + (other_axis_fix or "Transpose it (samples as rows, genes as columns) and export again"))
    if known < min_mapped_fraction:
        raise ValueError(f"{where}: only {n_known} of {n} gene ids ({100 * known:.1f}%) map to the gene table "
                         f"(e.g. unmapped: {[i for i in (mapping_summary or {}).get('unmapped_examples', [])][:3]}); "
                         f"check that the ids are gene symbols, Ensembl or Entrez ids of the table's species and "
                         f"that the gene table is complete, or pass --min-mapped-fraction "
                         f"{max(round(known - 0.05, 2), 0):g} to use them anyway")
    if known < WARN_MAPPED_FRACTION and log is not None:
        log(f"warning: {where}: only {n_known} of {n} gene ids ({100 * known:.1f}%) map to the gene table; the "
            f"unmapped ones are {'kept under their own id' if (mapping_summary or {}).get('unmapped_policy') == 'keep' else 'dropped'} "
            f"(see the report)")


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
