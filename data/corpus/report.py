"""The corpus-building summary as Markdown (report.md inside the corpus, and the console summary)."""
from __future__ import annotations


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def render_markdown(report: dict, brief: bool = False) -> str:
    """Markdown for a ``build_corpus`` report: a per-source table, then (unless ``brief``) the details."""
    lines = [f"# Corpus {report['corpus']}", "",
             f"{report['n_samples']:,} samples x {report['n_genes']:,} genes from {report['n_datasets']} datasets "
             f"(vocabulary: {report['vocabulary']['source']}; {report['vocabulary']['genes_not_in_vocabulary']:,} "
             f"genes of the sources left out of it). Gene table: {report['gene_table']}. "
             f"Built in {report['seconds']['total']} s ({report['throughput_samples_per_s']:,} samples/s).", "",
             "| dataset | kind | samples in | kept | genes mapped / in file | measured | sparsity | median library | removed |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for s in report["sources"]:
        m = s["gene_mapping"]
        removed = "; ".join(f"{v:,} {k}" for k, v in s["removed"].items()) or "none"
        if s["skipped"]:
            removed += f" (skipped: {s['skipped']})"
        lib = s["library_size"]["median"] if s["library_size"] else None
        lines.append(f"| {s['dataset']} | {s['kind']} | {s['samples_in']:,} | {s['samples_kept']:,} | "
                     f"{m['mapped']:,} / {m['input_ids']:,} | {s['genes_measured']:,} | {_fmt(s['sparsity'])} | "
                     f"{_fmt(lib)} | {removed} |")
    if brief:
        return "\n".join(lines)
    lines += ["", "## Per source", ""]
    for s in report["sources"]:
        m = s["gene_mapping"]
        lines += [f"### {s['dataset']}", "",
                  f"- file: `{s['path']}` ({s['format']})",
                  f"- thresholds: gene detected in >= {s['thresholds']['min_cells_per_gene']} samples, sample with "
                  f">= {s['thresholds']['min_genes_per_cell']} detected genes ({s['kind']})",
                  f"- genes: {m['input_ids']:,} ids in the file; {m['mapped']:,} mapped, {m['ambiguous']:,} ambiguous, "
                  f"{m['unmapped']:,} unmapped ({m['unmapped_policy']}: {m['kept_under_original_id']:,} kept under their "
                  f"original id, {m['dropped_not_mapped']:,} dropped); {m['dropped_spike_ins']:,} spike-ins dropped; "
                  f"{m['duplicate_ids_in_file']:,} duplicate ids in the file; {m['genes_with_summed_inputs']:,} genes "
                  f"summed from several ids (e.g. {', '.join(m['summed_examples'][:5]) or '-'})",
                  f"- genes after mapping: {m['genes_after_mapping']:,}; detected: {s['genes_detected']:,}; passing "
                  f"the gene filter: {s['genes_passing_filter']:,}; measured in the corpus: {s['genes_measured']:,}",
                  f"- unmapped examples: {', '.join(m['unmapped_examples'][:10]) or '-'}",
                  f"- metadata columns: {', '.join(f'{k} <- {v}' for k, v in s['obs_columns'].items()) or 'none'}",
                  f"- values rounded (--allow-non-integer): {s['values_rounded']:,}"]
        if s["library_size"]:
            lines.append("- library size: " + ", ".join(f"{k} {_fmt(v)}" for k, v in s["library_size"].items()))
        if s["phenoprint"]:
            kept = sum(1 for r in s["phenoprint"] if r["kept"])
            lines.append(f"- phenoprint: {kept} of {len(s['phenoprint'])} perturbations consistent and kept")
        lines.append("")
    return "\n".join(lines)
