"""Every page under streamlit's AppTest: renders, gene search, deep links, and the error messages."""
import re
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

MAIN = str(Path(__file__).resolve().parents[2] / "app" / "main.py")
PAGES = ["overview", "gene_map", "neighbourhood", "modules", "enrichment", "compare", "subspaces"]


def make_app(monkeypatch, root: Path, **params) -> AppTest:
    monkeypatch.setenv("TXFM_BUNDLES", str(root))
    at = AppTest.from_file(MAIN, default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    return at


def texts(elements) -> str:
    """Element texts with Markdown backslash escapes removed (app.text.esc), i.e. as a viewer reads them."""
    return "\n".join(unescape(str(e.value)) for e in elements)


def unescape(md: str) -> str:
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", md)


def test_every_page_renders(monkeypatch, bundles_dir):
    at = make_app(monkeypatch, bundles_dir, bundle=["alpha", "beta"], gene="TP53").run()
    charts = {}
    for page in PAGES:
        if page != "overview":
            at.switch_page(f"views/{page}.py").run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert not at.error, (page, texts(at.error))
        assert at.title[0].value  # each page has its title
        charts[page] = len(at.get("plotly_chart"))
    # overview: 2 bundles x (loss, recall, spectrum); compare: 2 maps, histogram, 2 recall charts;
    # neighbourhood: ego network; gene map: the map; modules: module network; subspaces: recall curves, spectrum.
    assert charts == {"overview": 6, "gene_map": 1, "neighbourhood": 1, "modules": 1, "enrichment": 0,
                      "compare": 5, "subspaces": 2}


def test_searching_a_gene_shows_its_neighbours(monkeypatch, bundles_dir, alpha):
    at = make_app(monkeypatch, bundles_dir).run()
    at.switch_page("views/neighbourhood.py").run()
    assert "Pick a gene" in texts(at.info)
    # A pick in the type-ahead box (a browser component, driven in test_browser.py) stores the gene and
    # reruns the page; here the same path: the box's submit stores the gene in the view parameters.
    at.session_state["_txfm_params"] = {**at.session_state["_txfm_params"], "gene": "TP53"}
    at.run()
    assert not at.exception
    assert "TP53: 20 nearest genes in `codebook` at rank 8" in texts(at.subheader)
    table = at.dataframe[0].value
    idx, sims = alpha.knn("codebook")                 # default matrix and rank: the stored kNN (rank 8)
    x = np.asarray(alpha.subspace("codebook")[:, :8], dtype=np.float64)   # independent check of that rank
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    s = x @ x[0]
    s[0] = -np.inf
    assert set(np.argsort(-s)[:20]) == set(idx[0, :20].tolist())
    assert table["gene"].tolist() == [alpha.symbols[i] for i in idx[0, :20]]
    np.testing.assert_allclose(table["cosine"], np.round(sims[0, :20], 4), atol=1e-4)
    # The fixture pairs TP53 with MDM2, CDKN1A, BAX and GADD45A in CORUM (and maybe more in
    # other sources): every listed one of them must be marked known, with CORUM among its sources.
    hubs = table[table["gene"].isin(["MDM2", "CDKN1A", "BAX", "GADD45A"])]
    assert len(hubs) >= 1 and hubs["known"].all() and hubs["sources"].str.contains("CORUM").all()
    assert at.query_params["gene"] == "TP53"          # the view is now in the URL


def test_alias_and_unknown_gene(monkeypatch, bundles_dir):
    at = make_app(monkeypatch, bundles_dir, gene="p21").run()
    at.switch_page("views/neighbourhood.py").run()
    assert "CDKN1A: 20 nearest genes" in texts(at.subheader)
    at = make_app(monkeypatch, bundles_dir, gene="TP53X").run()
    at.switch_page("views/neighbourhood.py").run()
    warn = texts(at.warning)
    assert "`TP53X` is not in bundle `alpha`" in warn and "`TP53`" in warn
    assert len(at.dataframe) == 0


def test_deep_link_matrix_rank_k(monkeypatch, bundles_dir, alpha):
    at = make_app(monkeypatch, bundles_dir, gene="MDM2", matrix="decoder", rank="5", k="7").run()
    at.switch_page("views/neighbourhood.py").run()
    assert "MDM2: 7 nearest genes in `decoder` at rank 5" in texts(at.subheader)
    # Independent computation: cosine on the first 5 subspace columns.
    x = np.asarray(alpha.subspace("decoder")[:, :5], dtype=np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    row = int(np.flatnonzero(alpha.symbols == "MDM2")[0])
    s = x @ x[row]
    s[row] = -np.inf
    expect = np.argsort(-s, kind="stable")[:7]
    table = at.dataframe[0].value
    assert table["gene"].tolist() == [alpha.symbols[i] for i in expect]
    np.testing.assert_allclose(table["cosine"], np.round(s[expect], 4), atol=2e-4)


def test_enrichment_page_reports_unmapped(monkeypatch, bundles_dir):
    at = make_app(monkeypatch, bundles_dir).run()
    at.switch_page("views/enrichment.py").run()
    assert "gene list is empty" in texts(at.info)
    at.text_area(key="enrich_text").input("TP53\nMDM2\nCDKN1A\nBAX\nGADD45A\nBBC3\nNOTAGENE").run()
    assert not at.exception
    md = texts(at.markdown)
    assert "**6** genes mapped" in md and "`NOTAGENE`" in md
    res = at.dataframe[0].value
    assert res.iloc[0]["term"] == "HALLMARK_P53_PATHWAY" and res.iloc[0]["overlap"] == 6


def test_no_bundles_message(monkeypatch, tmp_path):
    at = make_app(monkeypatch, tmp_path).run()
    assert "No bundles found" in texts(at.error)
    assert "make demo" in texts(at.code)


def test_bad_bundle_message(monkeypatch, bad_bundles_dir):
    at = make_app(monkeypatch, bad_bundles_dir).run()
    err = texts(at.error)
    assert "Bundle `broken` is not valid" in err and "knn/codebook.indices.npy" in err


def test_compare_two_matrices_of_one_bundle(monkeypatch, bundles_dir, alpha):
    """With one bundle, Compare sets its codebook against its decoder; the kept/lost/gained lists of the URL
    gene are the stored top-20 lists' intersection and differences (computed here from the kNN files)."""
    at = make_app(monkeypatch, bundles_dir, bundle="alpha", gene="TP53").run()
    at.switch_page("views/compare.py").run()
    assert not at.exception and not at.error, texts(at.error)
    assert at.selectbox(key="w_cmp_a_matrix_alpha").value == "codebook"
    assert at.selectbox(key="w_cmp_b_matrix_alpha").value == "decoder"
    assert "cmp_a" not in at.query_params and "cmp_b" not in at.query_params     # defaults stay out of the URL
    row = 0                                                            # TP53 is gene row 0
    ka = {alpha.symbols[j] for j in alpha.knn("codebook")[0][row, :20]}
    kb = {alpha.symbols[j] for j in alpha.knn("decoder")[0][row, :20]}
    tables = {len(d.value): d.value for d in at.dataframe}
    both = next(d.value for d in at.dataframe if set(d.value["gene"]) == ka & kb)
    lost = next(d.value for d in at.dataframe if set(d.value["gene"]) == ka - kb)
    gained = next(d.value for d in at.dataframe if set(d.value["gene"]) == kb - ka)
    assert len(both) + len(lost) + len(gained) == len(ka | kb) and tables
    assert lost["rank_b"].isna().all() and gained["rank_a"].isna().all()
    md = texts(at.markdown)
    assert f"{len(ka & kb)} of its top-20 neighbours kept" in md
    # the module table covers every shared gene once
    mods = next(d.value for d in at.dataframe if "module_a" in d.value.columns)
    assert mods["genes"].sum() == alpha.n_genes


def test_compare_any_two_bundles_and_matrices(monkeypatch, bundles_dir):
    """A's codebook against B's decoder, chosen on the page and kept in the URL."""
    at = make_app(monkeypatch, bundles_dir, bundle=["alpha", "beta"], gene="MDM2").run()
    at.switch_page("views/compare.py").run()
    assert at.selectbox(key="w_cmp_b_matrix_beta").value == "codebook"   # same matrix name by default
    at.selectbox(key="w_cmp_b_matrix_beta").set_value("decoder").run()
    assert not at.exception and not at.error
    assert at.query_params["cmp_b"] == "beta:decoder"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Shared genes"] == "300" and "Recall, B vs A" in metrics


def test_modules_table_and_component_enrichment(monkeypatch, bundles_dir, alpha):
    at = make_app(monkeypatch, bundles_dir, resolution="res_0.5").run()
    at.switch_page("views/modules.py").run()
    summary = at.dataframe[0].value.set_index("module")
    p53_module = int(alpha.modules("codebook")["res_0.5"][0])      # TP53 is gene row 0
    assert summary.loc[p53_module, "term"] == "HALLMARK_P53_PATHWAY"
    assert summary["size"].sum() == alpha.n_genes
    at.switch_page("views/subspaces.py").run()
    n_tables = len(at.dataframe)
    at.button(key="enr_positive").click().run()
    assert not at.exception
    assert len(at.dataframe) == n_tables + 1
    enr = [d.value for d in at.dataframe if "term" in d.value.columns]
    assert len(enr) == 1 and {"library", "overlap", "p", "q", "genes"} <= set(enr[0].columns)
    assert (enr[0]["overlap"] >= 1).all() and enr[0]["p"].is_monotonic_increasing


def test_switching_matrix_starts_at_the_new_matrix_chosen_rank(monkeypatch, bundles_dir):
    """A rank chosen for one matrix is not carried to another (the slider's label names the new
    matrix's chosen rank, so the value must be it); coming back starts at the chosen rank again."""
    at = make_app(monkeypatch, bundles_dir, gene="MDM2", matrix="decoder", rank="5").run()
    at.switch_page("views/neighbourhood.py").run()
    assert "in `decoder` at rank 5" in texts(at.subheader)
    at.selectbox(key="w_matrix_alpha").set_value("codebook").run()
    assert not at.exception
    assert "in `codebook` at rank 8" in texts(at.subheader)          # the codebook's chosen rank
    # the codebook (first matrix) at its chosen rank is the default view: both leave the URL
    assert "rank" not in at.query_params and "matrix" not in at.query_params
    at.selectbox(key="w_matrix_alpha").set_value("decoder").run()
    assert "in `decoder` at rank 8" in texts(at.subheader)


def test_modules_page_opens_the_module_of_the_url_gene(monkeypatch, bundles_dir, alpha):
    res = "res_1.0"
    row = int(np.flatnonzero(alpha.symbols == "MDM2")[0])
    home = int(alpha.modules("codebook")[res][row])
    at = make_app(monkeypatch, bundles_dir, gene="MDM2", resolution=res).run()
    at.switch_page("views/modules.py").run()
    assert not at.exception
    assert texts(at.subheader).startswith(f"Module {home}:")
    assert "**MDM2** is in this module" in texts(at.caption)
    # a module given in the URL with the gene is kept (a shared link to a module view)
    other = next(m for m in sorted(set(alpha.modules("codebook")[res])) if m != home)
    at = make_app(monkeypatch, bundles_dir, gene="MDM2", resolution=res, module=str(other)).run()
    at.switch_page("views/modules.py").run()
    assert texts(at.subheader).startswith(f"Module {other}:")
    assert f"**MDM2** is in module {home}, not this one" in texts(at.caption)


def test_gene_cards_name_and_link_the_gene(monkeypatch, bundles_dir, alpha):
    """The neighbourhood page shows the gene's card (official name, Ensembl id, NCBI Gene / Ensembl / UniProt /
    GeneCards links built from its identifiers) and every neighbour's name and links in the table."""
    at = make_app(monkeypatch, bundles_dir, gene="TP53").run()
    at.switch_page("views/neighbourhood.py").run()
    urls = {b.proto.label: b.proto.url for b in at.get("link_button")}
    g = alpha.genes.iloc[0]                                            # TP53 is row 0
    assert urls["NCBI Gene"] == f"https://www.ncbi.nlm.nih.gov/gene/{g.entrez_id}"
    assert urls["Ensembl"] == f"https://www.ensembl.org/Homo_sapiens/Gene/Summary?g={g.ensembl_id}"
    assert urls["GeneCards"] == "https://www.genecards.org/cgi-bin/carddisp.pl?gene=TP53"
    assert "organism_id:9606" in urls["UniProt"]
    assert any(unescape(m.value) == f"**TP53** · planted gene 0 (programme 0) · {g.ensembl_id}" for m in at.markdown)
    table = at.dataframe[0].value
    rows = [int(np.flatnonzero(alpha.symbols == s)[0]) for s in table["gene"]]
    assert table["name"].tolist() == alpha.genes["name"].iloc[rows].tolist()
    assert table["NCBI Gene"].tolist() == [f"https://www.ncbi.nlm.nih.gov/gene/{alpha.genes.entrez_id.iloc[r]}"
                                           for r in rows]


def test_gene_card_links_are_url_encoded():
    from app.cards import card_text, links
    import pandas as pd
    u = links("A B)[x](javascript:1", "ENSG1", "")
    assert all(" " not in v and ")" not in v.split("?", 1)[-1] for v in u.values())
    md = card_text(pd.DataFrame({"symbol": ["X](http://evil"], "name": ["[n](http://e)"],
                                 "ensembl_id": [""], "entrez_id": [""]}), 0)
    assert "](http://evil" not in md and "[n](http://e)" not in md


def test_string_link_and_enrichr_form_carry_the_genes_and_nothing_else():
    """STRING: the genes, URL-encoded, in one identifiers parameter (at most STRING_MAX_GENES); Enrichr: a form
    posting the list, one gene a line, HTML-escaped so a hostile symbol stays a value."""
    from html.parser import HTMLParser
    from urllib.parse import parse_qs, urlsplit
    from app.cards import ENRICHR_ACTION, STRING_MAX_GENES, enrichr_form, string_url
    hostile = ['TP53', 'A&B', 'X"><script>alert(1)</script>', "C D%0dE"]
    u = urlsplit(string_url(hostile))
    assert (u.scheme, u.netloc, u.path) == ("https", "string-db.org", "/cgi/network")
    q = parse_qs(u.query)
    assert q["species"] == ["9606"] and q["identifiers"][0].split("\r") == hostile
    assert len(parse_qs(urlsplit(string_url([f"G{i}" for i in range(900)])).query)["identifiers"][0].split("\r")) \
        == STRING_MAX_GENES

    class Form(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags, self.fields, self.text, self._in = [], {}, "", None

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            self.tags.append((tag, a))
            if tag == "input":
                self.fields[a["name"]] = a["value"]
            self._in = a.get("name") if tag == "textarea" else None

        def handle_data(self, data):
            if self._in:
                self.fields[self._in] = self.fields.get(self._in, "") + data

    f = Form()
    f.feed(enrichr_form(hostile, 'module 3 of "alpha"'))
    form = next(a for t, a in f.tags if t == "form")
    assert form == {"action": ENRICHR_ACTION, "method": "post", "enctype": "multipart/form-data", "target": "_blank"}
    assert f.fields["list"].split("\n") == hostile and f.fields["description"] == 'module 3 of "alpha"'
    assert [t for t, _ in f.tags] == ["html", "body", "form", "textarea", "input", "button"]   # no script, no link


def test_pasted_gene_list_is_kept_in_the_url(monkeypatch, bundles_dir):
    at = make_app(monkeypatch, bundles_dir).run()
    at.switch_page("views/enrichment.py").run()
    at.text_area(key="enrich_text").input("TP53\nMDM2, CDKN1A").run()
    assert at.query_params["genes"] == "TP53,MDM2,CDKN1A"
    # the link opens with the list in place and its result
    at2 = make_app(monkeypatch, bundles_dir, genes="TP53,MDM2,CDKN1A,BAX,GADD45A,BBC3").run()
    at2.switch_page("views/enrichment.py").run()
    assert at2.text_area(key="enrich_text").value.split() == ["TP53", "MDM2", "CDKN1A", "BAX", "GADD45A", "BBC3"]
    assert at2.dataframe[0].value.iloc[0]["term"] == "HALLMARK_P53_PATHWAY"
    at2.switch_page("views/gene_map.py").run()                          # the map colours that list
    assert at2.selectbox(key="map_colour").value == "my gene list"
    assert not at2.exception and not at2.error


def test_map_labels_do_not_pile_up():
    from app.charts import spaced_labels
    x = np.array([0.0, 0.001, 0.5, 0.502, 1.0])
    y = np.array([0.0, 0.0, 0.5, 0.5, 1.0])
    keep = spaced_labels(x, y, x, y)
    assert keep.tolist() == [True, False, True, False, True]           # near-duplicates lose their label
    assert spaced_labels(x, y, x, y, limit=2).sum() == 2


def test_gene_set_members_drawn_above_grey(monkeypatch):
    from app.charts import gene_map
    import pandas as pd
    xy = pd.DataFrame({"x": np.arange(6.0), "y": np.arange(6.0)})
    colour = np.array(["none", "none", "set", "none", "big", "big"], dtype=object)
    fig = gene_map(xy, colour, "gene set", np.array(list("abcdef"), dtype=object))
    assert [t.name for t in fig.data] == ["none", "big", "set"]        # grey first, smallest group on top


def test_map_coloured_by_one_module(monkeypatch, bundles_dir, alpha):
    """'one module' colours the module of the URL gene (its genes exactly), the rest grey."""
    at = make_app(monkeypatch, bundles_dir, gene="TP53", resolution="res_1.0").run()
    at.switch_page("views/gene_map.py").run()
    at.selectbox(key="map_colour").set_value("one module").run()
    assert not at.exception and not at.error
    home = int(alpha.modules("codebook")["res_1.0"][0])                # TP53 is row 0
    assert at.selectbox(key="map_mod_res_1.0").value == home
    import json
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    coloured = next(t for t in spec["data"] if t["name"] == f"module {home}")
    want = np.flatnonzero(alpha.modules("codebook")["res_1.0"].to_numpy() == home)
    cd = coloured["customdata"]
    if isinstance(cd, dict):                                           # plotly's typed-array encoding
        import base64
        cd = np.frombuffer(base64.b64decode(cd["bdata"]), dtype=cd["dtype"]).tolist()
    assert sorted(cd) == want.tolist()


def test_compare_opens_on_the_txfm_decoder_against_pca(monkeypatch, real_bundles):
    """With one bundle in the sidebar and a folder holding TxFM and PCA bundles of the same genes, Compare opens on
    TxFM's decoder (A) against PCA (B), from either side; the defaults stay out of the URL and any other pick is
    kept there. Two bundles picked in the sidebar are compared as picked."""
    from precompute.bundle.compare import neighbourhood_change
    from precompute.bundle.reader import open_bundle
    root = real_bundles["root"]                      # txfm, pca, txfm-b, pca-b (copies), all of one corpus
    for shown in ("txfm", "pca"):
        at = make_app(monkeypatch, root, bundle=shown, gene="GENE3").run()
        at.switch_page("views/compare.py").run()
        assert not at.exception and not at.error, texts(at.error)
        assert at.selectbox(key="w_cmp_a_bundle").value == "txfm"
        assert at.selectbox(key="w_cmp_a_matrix_txfm").value == "decoder"
        assert at.selectbox(key="w_cmp_b_bundle").value == "pca"
        assert at.selectbox(key="w_cmp_b_matrix_pca").value == "pca"
        assert "cmp_a" not in at.query_params and "cmp_b" not in at.query_params
        assert "Opened on TxFM's decoder (`txfm`) against the PCA baseline it is judged against (`pca`)" \
            in texts(at.caption)
    # the figures are those of that pair: the mean overlap of the kNN files, computed here
    a, b = open_bundle(root / "txfm"), open_bundle(root / "pca")
    k = min(a.knn("decoder")[0].shape[1], b.knn("pca")[0].shape[1])
    ch = neighbourhood_change(a.symbols, a.knn("decoder")[0], b.symbols, b.knn("pca")[0], k)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[f"Mean overlap of top-{k} neighbours"] == f"{ch['jaccard'].mean():.3f}"
    # another pick is kept in the URL (and the note goes)
    at.selectbox(key="w_cmp_a_matrix_txfm").set_value("codebook").run()
    assert at.query_params["cmp_a"] == "txfm:codebook" and "cmp_b" not in at.query_params
    assert "Opened on TxFM's decoder" not in texts(at.caption)
    # two bundles picked: compared as picked, matrix for matrix
    at = make_app(monkeypatch, root, bundle=["txfm", "txfm-b"]).run()
    at.switch_page("views/compare.py").run()
    assert at.selectbox(key="w_cmp_b_bundle").value == "txfm-b"
    assert at.selectbox(key="w_cmp_a_matrix_txfm").value == at.selectbox(key="w_cmp_b_matrix_txfm-b").value


def test_txfm_and_pca_pairs_only_bundles_that_share_genes(real_bundles, tmp_path):
    from app.quality import txfm_and_pca
    from precompute.bundle.reader import open_bundle
    root = real_bundles["root"]
    txfm, pca, pca_b = (open_bundle(root / n) for n in ("txfm", "pca", "pca-b"))
    assert [x.name for x in txfm_and_pca(txfm, [pca_b, pca, txfm])] == ["txfm", "pca-b"]   # folder order
    assert txfm_and_pca(txfm, [txfm]) is None                                          # no PCA bundle
    # a PCA bundle of other genes (symbols renamed) is no counterpart
    import shutil
    import pandas as pd
    other = tmp_path / "other-pca"
    shutil.copytree(root / "pca", other)
    g = pd.read_parquet(other / "genes.parquet")
    g["symbol"] = "X" + g["symbol"]
    g.to_parquet(other / "genes.parquet", index=False)
    assert txfm_and_pca(txfm, [open_bundle(other)]) is None
    # a bundle of another corpus comes after one of the same corpus
    other_fp = open_bundle(root / "pca-b")
    other_fp.manifest["source"]["corpus"] = {"fingerprint": "another corpus"}
    assert [x.name for x in txfm_and_pca(txfm, [other_fp, pca])] == ["txfm", "pca"]
