"""Fixtures for the app tests: small synthetic bundles with planted gene programs (built once)."""
import json
import shutil
from pathlib import Path

import pytest

from precompute.bundle.synthetic import make_planted_bundle as make_bundle


@pytest.fixture(scope="session")
def bundles_dir(tmp_path_factory) -> Path:
    """A bundles folder with two valid bundles of the same 300 genes: `alpha` and `beta` (another variant)."""
    root = tmp_path_factory.mktemp("bundles")
    make_bundle(root / "alpha", n_genes=300, n_programs=10, k=20, seed=0)
    make_bundle(root / "beta", n_genes=300, n_programs=10, k=20, seed=0, variant=1)
    return root


@pytest.fixture(scope="session")
def bad_bundles_dir(bundles_dir, tmp_path_factory) -> Path:
    """A bundles folder holding one bundle whose knn file was truncated after it was written."""
    root = tmp_path_factory.mktemp("bad")
    shutil.copytree(bundles_dir / "alpha", root / "broken")
    p = root / "broken" / "knn" / "codebook.indices.npy"
    p.write_bytes(p.read_bytes()[:200])
    return root


@pytest.fixture(scope="session")
def alpha(bundles_dir):
    from precompute.bundle.reader import open_bundle
    return open_bundle(bundles_dir / "alpha")


def manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


# Hand-made references for the evidence tests (tests/app/test_evidence.py): each pair and set chosen so the
# evidence of a pair can be written down by hand.
EVIDENCE_PAIRS = [("CORUM", "TP53", "MDM2"), ("StringDB", "MDM2", "TP53"),      # one pair, two sources
                  ("StringDB", "TP53", "CDKN1A"), ("CORUM", "MDM2", "CDKN1A"), ("huMAP", "BAX", "GADD45A")]
EVIDENCE_LIBRARIES = {
    # TP53-MDM2 share exactly one complex; NOT_A_BUNDLE_GENE counts in the size (3) but is not a bundle gene
    "CORUM_complexes": {"TP53-MDM2 complex": ["TP53", "MDM2", "NOT_A_BUNDLE_GENE"],
                        "MDM2-CDKN1A-BAX complex": ["MDM2", "CDKN1A", "BAX"]},
    "MSigDB_Reactome": {"REACTOME_P53_TARGETS": ["TP53", "CDKN1A", "BAX", "GADD45A"],
                        "REACTOME_APOPTOSIS": ["TP53", "BAX", "BBC3", "PMAIP1", "FAS", "GADD45A"]},
    "MSigDB_Hallmark": {"HALLMARK_P53_PATHWAY": ["TP53", "CDKN1A", "BAX", "GADD45A", "BBC3", "PMAIP1", "FAS"]},
    "GO_BP": {"apoptotic process (GO:0006915)": ["TP53", "BAX"],
              "intrinsic apoptotic signaling (GO:0097193)": ["TP53", "BAX", "BBC3"]},
    # not one of the default evidence libraries: only shown when picked
    "MSigDB_KEGG": {"KEGG_P53_SIGNALING": ["TP53", "MDM2", "CDKN1A"]},
}


@pytest.fixture(scope="session")
def evidence_dir(bundles_dir, tmp_path_factory) -> Path:
    """A bundles folder with `evidence`: bundle alpha with the references above instead of its own."""
    import pandas as pd

    from precompute.bundle.files import file_table, gmt_file, PAIRS, GMT_DIR, write_json_atomic
    root = tmp_path_factory.mktemp("evidence")
    out = root / "evidence"
    shutil.copytree(bundles_dir / "alpha", out)
    pd.DataFrame(EVIDENCE_PAIRS, columns=["source", "gene_a", "gene_b"]).to_parquet(out / PAIRS, index=False)
    shutil.rmtree(out / GMT_DIR)
    (out / GMT_DIR).mkdir()
    for lib, sets in EVIDENCE_LIBRARIES.items():
        (out / gmt_file(lib)).write_text("".join(f"{t}\thand-made\t" + "\t".join(g) + "\n" for t, g in sets.items()))
    m = manifest(out)
    m["files"] = file_table(out)
    write_json_atomic(out / "manifest.json", m)
    return root
