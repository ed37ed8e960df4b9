"""Reference tables: fixture wheels and .debs built in the test (laid out like the real ones),
GMT round trips, an offline end-to-end fetch, and the real registry packages."""
import json
import shutil
import sqlite3
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from data.references import gene_sets as gs
from data.references import tables
from data.references import fetch as refs
from data.genes.table import GeneTable
from data.references.registry import RegistryError, pip_download

from tests.data.orgdb_schema import ORGDB_GENE_TABLES

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"
A = refs.EFAAR_DIR

LICENSE = """The datasets in this directory are subject to different terms and conditions.
## CORUM.txt
The data in CORUM.txt is licensed under the terms of [CC-BY-NC 4.0](https://example.org/by-nc).
## HuMAP.txt
The data in HuMAP.txt is licensed under the terms of [CC-BY 4.0](https://example.org/by).
"""
PAIRS = {
    # reversed duplicate, self-pair, a previous symbol (SEPT7) and an unknown gene
    "CORUM.txt": "entity1,entity2\nTP53,MDM2\nMDM2,TP53\nTP53,TP53\nSEPT7,TP53\nUNKNOWN1,MDM2\n",
    "HuMAP.txt": "entity1,entity2\nCDKN1A,TP53\n",
    "Reactome.txt": "entity1,entity2\nP21,MDM2\n",  # P21 is an alias of CDKN1A
    "SIGNOR.txt": "entity1,entity2\nMDM2,TP53\nTP53,MDM2\n",
    "StringDB.txt": "entity1,entity2\nMT-CO2,CDKN1A\n",
}
CLUSTERS = "p53-MDM2 complex\tTP53 MDM2\nseptin complex\tSEPT7 SEPT7 CDKN1A\nBARD1\\u2013BRCA1 complex\tBARD1 BRCA1\n"
HALLMARK = "HALLMARK_P53_PATHWAY\thttp://h\tTP53\tMDM2\tCDKN1A\n"
C2CP = ("REACTOME_A\tdr\tTP53\tP21\nKEGG_B\tdk\tMDM2\tTP53\nWP_C\tdw\tTP53\n"
        "BIOCARTA_D\tdb\tMDM2\nPID_E\tdp\tCDKN1A\nNABA_F\tdn\tSEPT7\n")


def make_efaar_wheel(path: Path, drop: str | None = None) -> Path:
    files = {**PAIRS, "CORUM_clusters.tsv": CLUSTERS, "LICENSE": LICENSE}
    with zipfile.ZipFile(path, "w") as z:
        for name, text in files.items():
            if name != drop:
                z.writestr(f"{A}/{name}", text)
        z.writestr("efaar_benchmarking/__init__.py", "")
    return path


def make_pegasus_wheel(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{gs.PEGASUS_DIR}/{gs.HALLMARK_FILE}", HALLMARK)
        z.writestr(f"{gs.PEGASUS_DIR}/{gs.CP_FILE}", C2CP)
        z.writestr("pegasuspy-1.10.2.dist-info/licenses/LICENSE", "BSD 3-Clause License\n\n...")
    return path


@pytest.fixture(scope="module")
def table() -> GeneTable:
    return GeneTable.from_frame(pd.DataFrame({
        "symbol": ["TP53", "MDM2", "CDKN1A", "SEPTIN7", "MT-CO2"],
        "entrez_id": ["7157", "4193", "1026", "989", "4513"],
        "aliases": ["P53", "", "P21|CIP1", "SEPT7|CDC10", "COX2|MTCO2"]}))


def test_read_efaar_wheel_and_canonical_pairs(tmp_path, table):
    raw = refs.read_efaar_wheel(make_efaar_wheel(tmp_path / "e.whl"))
    assert set(raw["pairs"]) == {"CORUM", "huMAP", "Reactome", "SIGNOR", "StringDB"}
    assert raw["licences"] == {"CORUM.txt": "CC-BY-NC 4.0 (https://example.org/by-nc)",
                               "HuMAP.txt": "CC-BY 4.0 (https://example.org/by)"}
    assert raw["complexes"] == [("p53-MDM2 complex", ["TP53", "MDM2"]),
                                ("septin complex", ["SEPT7", "CDKN1A"]),
                                ("BARD1\u2013BRCA1 complex", ["BARD1", "BRCA1"])]   # the file's literal \u2013 decoded
    corum = raw["pairs"]["CORUM"]
    renames, stats = refs.remap_symbols(pd.concat([corum.entity1, corum.entity2]), table)
    assert renames == {"SEPT7": "SEPTIN7"}
    assert stats == {"n_ids": 4, "renamed": 1, "ambiguous": 0, "unmapped": 1}
    pairs = tables.canonical_pairs(corum.entity1.map(lambda g: renames.get(g, g)),
                                 corum.entity2.map(lambda g: renames.get(g, g)))
    assert pairs.values.tolist() == [["MDM2", "TP53"], ["MDM2", "UNKNOWN1"], ["SEPTIN7", "TP53"]]


def test_missing_wheel_member_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"no efaar_benchmarking/benchmark_annotations/SIGNOR.txt"):
        refs.read_efaar_wheel(make_efaar_wheel(tmp_path / "e.whl", drop="SIGNOR.txt"))


def test_read_pegasus_wheel_splits_collections(tmp_path):
    peg = gs.read_pegasus_wheel(make_pegasus_wheel(tmp_path / "p.whl"))
    libs = {k: [(n, d, g) for n, d, g in v] for k, v in peg["libraries"].items()}
    assert libs == {
        "MSigDB_Hallmark": [("HALLMARK_P53_PATHWAY", "http://h", ["TP53", "MDM2", "CDKN1A"])],
        "MSigDB_Reactome": [("REACTOME_A", "dr", ["TP53", "P21"])],
        "MSigDB_KEGG": [("KEGG_B", "dk", ["MDM2", "TP53"])],
        "MSigDB_WikiPathways": [("WP_C", "dw", ["TP53"])],
        "MSigDB_BioCarta": [("BIOCARTA_D", "db", ["MDM2"])],
        "MSigDB_PID": [("PID_E", "dp", ["CDKN1A"])],
        "MSigDB_CP_other": [("NABA_F", "dn", ["SEPT7"])]}
    assert peg["licence"] == "BSD 3-Clause License"


def test_gmt_round_trip(tmp_path):
    sets = {"set one": ["B", "A", "C"], "GO term (GO:0000001)": ["X"]}
    path = tables.write_gmt(tmp_path / "lib.gmt", sets, {"set one": "first"})
    assert path.read_text() == "set one\tfirst\tB\tA\tC\nGO term (GO:0000001)\tna\tX\n"
    assert tables.load_gmt(path) == sets
    with pytest.raises(ValueError, match="tab/newline"):
        tables.write_gmt(tmp_path / "bad.gmt", {"s": ["A\tB"]})
    with pytest.raises(ValueError, match="no genes"):
        tables.write_gmt(tmp_path / "bad.gmt", {"s": []})
    assert not (tmp_path / "bad.gmt").exists()
    (tmp_path / "short.gmt").write_text("only\tdescription\n")
    with pytest.raises(ValueError, match=r"short.gmt: line 1 has 2"):
        tables.load_gmt(tmp_path / "short.gmt")
    (tmp_path / "binary.gmt").write_bytes(b"ok\td\tA\n\x00\x01\x02\tx\ty\n")
    with pytest.raises(ValueError, match=r"binary.gmt: line 2 contains control characters"):
        tables.load_gmt(tmp_path / "binary.gmt")
    (tmp_path / "nameless.gmt").write_text(" \td\tA\n")
    with pytest.raises(ValueError, match=r"nameless.gmt: line 1 .*no name"):
        tables.load_gmt(tmp_path / "nameless.gmt")
    # blank lines and Windows line ends are fine; repeated genes are kept once, in order
    from common.gmt import gmt_sets
    assert gmt_sets("a\td\tX\tY\tX\r\n\r\nb\td\tZ\r\n") == {"a": ["X", "Y"], "b": ["Z"]}


def test_load_pairs_reads_sources(tmp_path):
    tables.write_pairs(tmp_path / "pairs" / "CORUM.tsv",
                     tables.canonical_pairs(["B", "C"], ["A", "B"]))
    tables.write_pairs(tmp_path / "pairs" / "SIGNOR.tsv", tables.canonical_pairs(["X"], ["Y"]))
    df = tables.load_pairs(tmp_path)
    assert df.values.tolist() == [["CORUM", "A", "B"], ["CORUM", "B", "C"], ["SIGNOR", "X", "Y"]]
    assert tables.load_pairs(tmp_path, ["SIGNOR"]).values.tolist() == [["SIGNOR", "X", "Y"]]
    with pytest.raises(ValueError, match=r"no pairs for \['STRING'\]"):
        tables.load_pairs(tmp_path, ["STRING"])
    with pytest.raises(FileNotFoundError, match="fetch-references"):
        tables.load_pairs(tmp_path / "nowhere")


# ---------------------------------------------------------------------- GO fixtures
GO_TERMS = [(1, "all", "all", "universal"), (2, "GO:0008150", "biological_process", "BP"),
            (3, "GO:0006915", "apoptotic process", "BP"),
            (4, "GO:0097193", "intrinsic apoptotic signaling pathway", "BP"),
            (5, "GO:0043065", "positive regulation of apoptotic process", "BP")]
GO_PARENTS = [(2, 1, "isa"), (3, 2, "isa"), (4, 3, "part of"), (5, 2, "isa"),
              (5, 3, "positively regulates")]
# TP53 -> intrinsic pathway, MDM2 -> positive regulation, CDKN1A -> apoptotic process
GO_BP = [(1, "GO:0097193", "IDA"), (2, "GO:0043065", "IEA"), (3, "GO:0006915", "TAS")]


def make_go_sqlite(path: Path) -> Path:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE go_term (_id INTEGER, go_id TEXT, term TEXT, ontology TEXT)")
    con.execute("CREATE TABLE go_bp_parents (_id INTEGER, _parent_id INTEGER, "
                "relationship_type TEXT)")
    con.executemany("INSERT INTO go_term VALUES (?,?,?,?)", GO_TERMS)
    con.executemany("INSERT INTO go_bp_parents VALUES (?,?,?)", GO_PARENTS)
    con.commit()
    con.close()
    return path


def make_org_sqlite(path: Path) -> Path:
    con = sqlite3.connect(path)
    con.executescript(ORGDB_GENE_TABLES)
    con.executescript("""
    CREATE TABLE metadata (name TEXT, value TEXT);
    INSERT INTO metadata VALUES ('EGSOURCEDATE', '2022-Sep12'), ('ENSOURCEDATE', '2022-Jun28');
    CREATE TABLE go_bp (_id INTEGER, go_id TEXT, evidence TEXT);
    INSERT INTO genes VALUES (1,'7157'),(2,'4193'),(3,'1026'),(4,'989'),(5,'4513');
    INSERT INTO gene_info VALUES (1,'tumor protein p53','TP53'),(2,'MDM2 proto-oncogene','MDM2'),
      (3,'cyclin dependent kinase inhibitor 1A','CDKN1A'),(4,'septin 7','SEPTIN7'),
      (5,'cytochrome c oxidase subunit II','COX2');
    INSERT INTO genetype VALUES (1,'protein-coding'),(2,'protein-coding'),(3,'protein-coding'),
      (4,'protein-coding'),(5,'protein-coding');
    INSERT INTO alias VALUES (1,'P53'),(3,'P21'),(3,'CIP1'),(4,'SEPT7'),(5,'MTCO2'),(5,'COX2');
    INSERT INTO ensembl VALUES (1,'ENSG00000141510'),(2,'ENSG00000135679');
    INSERT INTO ncbi2ensembl VALUES (1,'ENSG00000141510');
    INSERT INTO chromosomes VALUES (5,'MT');
    """)
    con.executemany("INSERT INTO go_bp VALUES (?,?,?)", GO_BP)
    con.commit()
    con.close()
    return path


ENTREZ = {"7157": "TP53", "4193": "MDM2", "1026": "CDKN1A"}


def test_go_propagation_by_relation_type(tmp_path):
    org, go = make_org_sqlite(tmp_path / "org.sqlite"), make_go_sqlite(tmp_path / "go.sqlite")
    sets, desc, stats = gs.go_bp_sets(org, go, ENTREZ, min_size=1)
    assert sets == {"apoptotic process (GO:0006915)": ["CDKN1A", "TP53"],
                    "positive regulation of apoptotic process (GO:0043065)": ["MDM2"],
                    "biological_process (GO:0008150)": ["CDKN1A", "MDM2", "TP53"],
                    "intrinsic apoptotic signaling pathway (GO:0097193)": ["TP53"]}
    assert desc["apoptotic process (GO:0006915)"] == "GO:0006915"
    assert stats["evidence_codes"] == {"IDA": 1, "IEA": 1, "TAS": 1}
    # following "positively regulates" too puts MDM2 into apoptotic process
    sets, _, _ = gs.go_bp_sets(org, go, ENTREZ, gs.GO_RELATIONS_ALL, min_size=1)
    assert sets["apoptotic process (GO:0006915)"] == ["CDKN1A", "MDM2", "TP53"]
    sets, _, _ = gs.go_bp_sets(org, go, ENTREZ, min_size=2, max_size=2)
    assert list(sets) == ["apoptotic process (GO:0006915)"]
    sets, _, stats = gs.go_bp_sets(org, go, ENTREZ, min_size=1, evidence=["IDA", "TAS"])
    assert sets["biological_process (GO:0008150)"] == ["CDKN1A", "TP53"]
    _, _, stats = gs.go_bp_sets(org, go, {"7157": "TP53"}, min_size=1)
    assert stats["annotations_gene_not_in_table"] == 2
    with pytest.raises(ValueError, match="unknown GO relation"):
        gs.go_bp_sets(org, go, ENTREZ, ["is_a"])


# ---------------------------------------------------------------------- offline end to end
def make_deb(tmp: Path, package: str, rdir: str, sqlite_src: Path, sqlite_name: str) -> Path:
    root = tmp / f"build-{package}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: 9.9.9-1\nArchitecture: all\nMaintainer: t <t@t>\n"
        f"Description: fixture\n")
    lib = root / "usr/lib/R/site-library" / rdir
    (lib / "extdata").mkdir(parents=True)
    shutil.copy(sqlite_src, lib / "extdata" / sqlite_name)
    (lib / "DESCRIPTION").write_text(f"Package: {rdir}\nVersion: 9.9.9\nLicense: Artistic-2.0\n")
    import subprocess
    out = tmp / f"{package}_9.9.9-1_all.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(out)],
                   check=True, capture_output=True)
    return out


@pytest.fixture()
def offline_cache(tmp_path) -> Path:
    """A references folder whose downloads/ already holds fixture wheels and .debs."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed (Debian's dpkg package builds the fixture .debs)")
    dl = tmp_path / "refs" / "downloads"
    dl.mkdir(parents=True)
    make_efaar_wheel(dl / "efaar_benchmarking-1.0-py2.py3-none-any.whl")
    make_pegasus_wheel(dl / "pegasuspy-1.10.2-cp311-cp311-manylinux2014_x86_64.whl")
    make_deb(dl, "r-bioc-org.hs.eg.db", "org.Hs.eg.db",
             make_org_sqlite(tmp_path / "org.sqlite"), "org.Hs.eg.sqlite")
    make_deb(dl, "r-bioc-go.db", "GO.db", make_go_sqlite(tmp_path / "go.sqlite"), "GO.sqlite")
    return tmp_path / "refs"


def test_fetch_references_offline_end_to_end(offline_cache):
    logs: list[str] = []
    man = refs.fetch_references(offline_cache, go_min_size=2, log=logs.append)
    out = offline_cache
    names = {t["name"]: t for t in man["tables"]}
    assert set(names) == set(refs.expected_tables())
    assert (out / "pairs" / "CORUM.tsv").read_text() == \
        "gene_a\tgene_b\nMDM2\tTP53\nMDM2\tUNKNOWN1\nSEPTIN7\tTP53\n"
    assert (out / "pairs" / "Reactome.tsv").read_text() == "gene_a\tgene_b\nCDKN1A\tMDM2\n"
    assert (out / "pairs" / "StringDB.tsv").read_text() == "gene_a\tgene_b\nCDKN1A\tMT-CO2\n"
    assert tables.load_pairs(out, ["SIGNOR"]).values.tolist() == [["SIGNOR", "MDM2", "TP53"]]
    assert tables.load_gmt(out / "gmt" / "CORUM_complexes.gmt") == {
        "p53-MDM2 complex": ["TP53", "MDM2"], "septin complex": ["SEPTIN7", "CDKN1A"],
        "BARD1\u2013BRCA1 complex": ["BARD1", "BRCA1"]}
    assert tables.load_gmt(out / "gmt" / "MSigDB_Reactome.gmt") == {"REACTOME_A": ["TP53", "CDKN1A"]}
    assert tables.load_gmt(out / "gmt" / "GO_BP.gmt") == {
        "apoptotic process (GO:0006915)": ["CDKN1A", "TP53"],
        "biological_process (GO:0008150)": ["CDKN1A", "MDM2", "TP53"]}
    c = names["CORUM"]
    assert (c["n_records"], c["n_genes"], c["raw_rows"], c["source_package"], c["version"]) == \
        (3, 4, 5, "efaar-benchmarking", "1.0")
    assert c["licence"] == "CC-BY-NC 4.0 (https://example.org/by-nc)"
    assert names["SIGNOR"]["licence"] == "not stated in the wheel"
    assert c["gene_mapping"] == {"n_ids": 4, "renamed": 1, "ambiguous": 0, "unmapped": 1}
    assert names["genes"]["version"] == "9.9.9-1" and names["genes"]["n_records"] == 5
    assert names["GO_BP"]["licence"].startswith("Artistic-2.0")
    assert c["sha256"] == refs.sha256_file(out / "pairs" / "CORUM.tsv")
    assert json.loads((out / "manifest.json").read_text())["format"] == "txfm-references"
    genes = pd.read_csv(out / "genes" / "genes.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert genes["symbol"].tolist() == ["CDKN1A", "MDM2", "MT-CO2", "SEPTIN7", "TP53"]
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []

    # second run: a no-op that says so
    logs.clear()
    refs.fetch_references(offline_cache, go_min_size=2, log=logs.append)
    assert len(logs) == 1 and "nothing to do" in logs[0]
    # other options rebuild; --force rebuilds the same bytes
    before = (out / "pairs" / "CORUM.tsv").read_bytes()
    refs.fetch_references(offline_cache, go_min_size=2, force=True, log=logs.append)
    assert (out / "pairs" / "CORUM.tsv").read_bytes() == before


def test_failed_fetch_leaves_previous_tables_untouched(offline_cache):
    refs.fetch_references(offline_cache, go_min_size=2, log=lambda m: None)
    manifest = (offline_cache / "manifest.json").read_text()
    wheel = offline_cache / "downloads" / "efaar_benchmarking-1.0-py2.py3-none-any.whl"
    make_efaar_wheel(wheel, drop="HuMAP.txt")
    with pytest.raises(ValueError, match="HuMAP.txt"):
        refs.fetch_references(offline_cache, go_min_size=2, force=True, log=lambda m: None)
    assert (offline_cache / "manifest.json").read_text() == manifest
    assert (offline_cache / "pairs" / "huMAP.tsv").exists()
    assert [p.name for p in offline_cache.iterdir() if p.name.startswith(".")] == []


def test_unreachable_registry_names_package_and_command(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.executable", "/bin/false")  # pip "fails" like an offline index
    with pytest.raises(RegistryError, match=r"efaar-benchmarking==1.0 from PyPI: `/bin/false -m pip"):
        pip_download("efaar-benchmarking", "1.0", tmp_path, log=lambda m: None)


# ---------------------------------------------------------------------- the real wheels
@pytest.fixture(scope="module")
def real_wheels() -> dict:
    dest = ROOT / "cache" / "references" / "downloads"
    try:
        return {"efaar": pip_download(*refs.EFAAR, dest, log=lambda m: None),
                "pegasus": pip_download(*gs.PEGASUS, dest, log=lambda m: None)}
    except RegistryError as e:
        pytest.skip(f"PyPI is unreachable and the wheels are not cached: {e}")


def test_real_efaar_wheel(real_wheels):
    raw = refs.read_efaar_wheel(real_wheels["efaar"])
    counts = {s: len(tables.canonical_pairs(df.entity1, df.entity2)) for s, df in raw["pairs"].items()}
    print(f"efaar-benchmarking 1.0 unique unordered pairs: {counts}; "
          f"CORUM complexes: {len(raw['complexes'])}")
    assert set(counts) == set(refs.PAIR_SOURCES)
    lower = {"CORUM": 30_000, "huMAP": 50_000, "Reactome": 15_000, "SIGNOR": 10_000,
             "StringDB": 50_000}
    assert all(counts[s] >= n for s, n in lower.items()), counts
    assert len(raw["complexes"]) > 2_500
    assert set(raw["licences"]) == set(refs.PAIR_SOURCES.values())


def test_real_pegasus_wheel(real_wheels):
    libs = gs.read_pegasus_wheel(real_wheels["pegasus"])["libraries"]
    counts = {k: len(v) for k, v in libs.items()}
    print(f"pegasuspy 1.10.2 MSigDB sets: {counts}")
    assert counts["MSigDB_Hallmark"] == 50
    assert counts["MSigDB_Reactome"] > 1_000 and counts["MSigDB_KEGG"] > 150
    assert sum(counts.values()) == 50 + 2982  # hallmark + every c2.cp v7.5.1 set


@pytest.mark.slow
def test_real_go_propagation_matches_org_hs_eg_db(tmp_path):
    """With every relation type our propagation must equal AnnotationDbi's own go_bp_all."""
    from data.genes.table import ORGDB_PACKAGE, ORGDB_SQLITE
    from data.references.registry import apt_download, extract_from_deb
    dl = ROOT / "cache" / "references" / "downloads"
    try:
        org = extract_from_deb(apt_download(ORGDB_PACKAGE, dl, log=lambda m: None),
                               [ORGDB_SQLITE], dl, log=lambda m: None)[ORGDB_SQLITE]
        go = extract_from_deb(apt_download(gs.GODB_PACKAGE, dl, log=lambda m: None),
                              [gs.GODB_SQLITE], dl, log=lambda m: None)[gs.GODB_SQLITE]
    except RegistryError as e:
        pytest.skip(f"apt could not fetch the GO packages: {e}")
    con = sqlite3.connect(org)
    entrez = {e: e for (e,) in con.execute("SELECT gene_id FROM genes")}
    expected: dict[str, set] = {}
    for e, g in con.execute("SELECT g.gene_id, b.go_id FROM go_bp_all b JOIN genes g USING(_id)"):
        expected.setdefault(g, set()).add(e)
    sets, desc, _ = gs.go_bp_sets(org, go, entrez, gs.GO_RELATIONS_ALL, 1, 10**9)
    ours = {desc[n]: set(g) for n, g in sets.items()}
    print(f"GO BP terms compared: {len(expected)}")
    assert ours == expected
