"""The benchmarks on the real public data in ../shared/data (slow: 5-60 s each depending on load;
skipped when the folder is absent)."""
import pandas as pd
import pytest

from evaluation.benchmarks import run_celltype, run_perturbation
from evaluation.perturbation import PerturbationParams

pytestmark = pytest.mark.slow


def test_papalexi_log1p_ranks_the_ifn_gamma_pathway_first(shared_data, tmp_path):
    """Knocking out IFNGR1/IFNGR2/JAK2/STAT1 blunts the IFN-gamma response of THP-1 cells, the
    screen's strongest phenotype: these targets have the most consistent cells, and every
    label-based metric beats the label-shuffled control."""
    t = run_perturbation(str(shared_data / "papalexi2021_thp1_crispr.h5ad"), tmp_path, references=None,
                         label_column="grna_target", batch_column="bio_rep",
                         params=PerturbationParams(n_null=5000)).set_index("embedding")
    cons = pd.read_csv(tmp_path / "consistency.csv")
    top5 = set(cons[cons.embedding == "log1p_counts"].nlargest(5, "statistic")["perturbation"])
    assert {"IFNGR1", "IFNGR2", "JAK2", "STAT1"} <= top5
    real, shuf = t.loc["log1p_counts"], t.loc["log1p_counts_shuffled_labels"]
    assert real["n_perturbations"] == 25                         # the 25 targets; controls and unassigned out
    for m in ("loo_cosine", "knn_top5", "probe_balanced_accuracy"):
        assert real[m] > shuf[m], m


def test_sorted_pbmc_populations_are_recovered_by_a_dataset_pca(shared_data, tmp_path):
    t = run_celltype([f"{shared_data / 'pbmc_sorted_reference_mudan.h5ad'}:cell_type"], tmp_path,
                     dataset_pca=50).set_index("embedding")
    assert t.loc["dataset_pca50", "knn_accuracy"] > 0.8
    assert t.loc["dataset_pca50", "ari@1"] > 0.5 > 0.05 > abs(t.loc["dataset_pca50_shuffled_labels", "ari@1"])
