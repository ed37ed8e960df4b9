"""Gene search: exact lookups, autocomplete order, close matches, list mapping."""
import pandas as pd

from app.search import GeneIndex, parse_gene_list

GENES = pd.DataFrame({
    "symbol": ["TP53", "TP53I3", "MDM2", "CDKN1A", "TP63"],
    "ensembl_id": ["ENSG00000141510", "ENSG00000115129", "ENSG00000135679", "ENSG00000124762", ""],
    "aliases": ["p53|LFS1", "PIG3", "HDM2", "p21|CIP1", "p63|TP53"],   # TP53 as an alias of TP63 must not win
})


def test_lookup_symbol_ensembl_alias_case_and_version():
    idx = GeneIndex.from_genes(GENES)
    assert idx.lookup("tp53") == 0
    assert idx.lookup(" TP53 ") == 0
    assert idx.lookup("ENSG00000124762.7") == 3          # version stripped
    assert idx.lookup("p21") == 3 and idx.lookup("CIP1") == 3
    assert idx.lookup("TP53") == 0                       # symbol beats TP63's alias "TP53"
    assert idx.lookup("p63") == 4
    assert idx.lookup("BRCA1") is None
    assert idx.label_to_row("p21 (alias of CDKN1A)") == 3
    assert idx.label_to_row("ENSG00000141510 (TP53)") == 0


def test_complete_prefers_symbols_then_shorter():
    idx = GeneIndex.from_genes(GENES)
    assert idx.complete("tp") == ["TP53", "TP63", "TP53I3"]
    assert idx.complete("p") == ["p21 (alias of CDKN1A)", "p53 (alias of TP53)", "p63 (alias of TP63)",
                                 "PIG3 (alias of TP53I3)"]
    assert idx.complete("ENSG0000014") == ["ENSG00000141510 (TP53)"]
    assert idx.complete("") == []


def test_close_matches_for_a_typo():
    idx = GeneIndex.from_genes(GENES)
    assert idx.close_matches("TP5")[:2] == ["TP53", "TP53I3"]       # prefix matches first
    assert "MDM2" in idx.close_matches("MDN2")                      # difflib catches a typo
    assert idx.close_matches("ZZZZZZ") == []


def test_map_list_dedupes_and_reports_unmapped():
    idx = GeneIndex.from_genes(GENES)
    rows, unmapped = idx.map_list(["mdm2", "HDM2", "p53", "FOO", "ENSG00000141510", "bar"])
    assert rows.tolist() == [2, 0]
    assert unmapped == ["FOO", "bar"]


def test_parse_gene_list_separators_and_header():
    assert parse_gene_list("gene\nTP53\nMDM2, CDKN1A;BAX\tFAS  ") == ["TP53", "MDM2", "CDKN1A", "BAX", "FAS"]
    assert parse_gene_list("  \n ") == []


def test_type_ahead_suggestions_are_answered_from_the_index(alpha):
    """The search box's answers: an exact identifier first (resolved), then prefix hits one per gene, then
    close matches; never more than the limit, so the page carries a dozen labels, not every gene."""
    from app.search import GeneIndex
    idx = GeneIndex.from_genes(alpha.genes)
    sugg = idx.suggest("tp5")
    assert sugg[0] == ("TP53", "TP53")                                  # symbols before longer ones
    assert [s for _, s in sugg] == sorted(set(s for _, s in sugg), key=[s for _, s in sugg].index)   # unique
    assert all(s.upper().startswith("TP5") or "alias" in lab or "ENSG" in lab for lab, s in sugg)
    assert idx.suggest("p21")[0] == ("p21 → CDKN1A", "CDKN1A")         # alias resolved first
    ens = alpha.genes.loc[alpha.genes.symbol == "MDM2", "ensembl_id"].iloc[0]
    if ens:
        assert idx.suggest(ens + ".7")[0][1] == "MDM2"                  # Ensembl id, any version
    assert idx.suggest("TP53X")[0] == ("TP53 (did you mean?)", "TP53")
    assert len(idx.suggest("G", limit=12)) == 12 and idx.suggest("   ") == []
