"""The parameters of a bundle build (recorded in the manifest) and the rank policy."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PAPER_RANKS = {"codebook": 32, "decoder": 256, "pca": 1024, "contextual": 256}
# Column standardisation before the PCA of each matrix. PCA loadings already carry their
# eigenvalue weighting; z-scoring their columns would whiten them (recall on the PBMC
# cross-check drops from 0.24 to 0.17, docs/precompute.md), so they are only centred.
DEFAULT_STANDARDISE = (("pca", False),)


@dataclass(frozen=True)
class BundleParams:
    """Parameters of every step (recorded in the manifest)."""
    ranks: tuple[int, ...] | None = None   # rank sweep of the recall (default: 8, 16, 32, ... up to the matrix width)
    rank_policy: Literal["paper", "best"] = "paper"  # rank of kNN, UMAP and modules: "paper" (codebook 32, decoder 256, pca 1024, capped at the width) or "best" (best recall of the sweep)
    chosen_ranks: tuple[tuple[str, int], ...] = ()  # explicit (matrix, rank) overrides
    n_nulls: int = 3                       # sampled nulls the recall is averaged over
    null_size: int = 5000                  # genes per null sample (5,000 x 5,000 similarities)
    full_null: bool = False                # exact all-pairs null instead of sampled nulls
    lower: float = 0.05                    # recall: below this null quantile counts
    upper: float = 0.95                    # recall: above this null quantile counts
    k: int = 50                            # neighbours per gene
    umap_epochs: int = 100                 # UMAP optimisation epochs (low: speed; see docs)
    umap_min_dist: float = 0.1             # UMAP min_dist
    resolutions: tuple[float, ...] = (0.5, 1.0, 2.0)   # Leiden resolutions
    min_set_size: int = 5                  # enrichment: smallest tested set (after restriction)
    max_set_size: int = 500                # enrichment: largest tested set
    top_terms: int = 10                    # enrichment rows kept per module and library
    seed: int = 0                          # seed of the nulls, UMAP and Leiden
    standardise: tuple[tuple[str, bool], ...] = DEFAULT_STANDARDISE  # (matrix, z-score columns?); others True

    def __post_init__(self) -> None:
        from common.options import OptionError, check_range
        for r in self.ranks or ():
            check_range("ranks", r, lo=1, integer=True, what="PCA ranks of the sweep")
        if self.rank_policy not in ("paper", "best"):
            raise OptionError(f"--rank-policy {self.rank_policy!r}: choose paper or best")
        for _, r in self.chosen_ranks:
            check_range("rank", r, lo=1, integer=True)
        check_range("n_nulls", self.n_nulls, lo=1, integer=True)
        check_range("null_size", self.null_size, lo=2, integer=True, what="genes per null sample")
        check_range("lower", self.lower, lo=0, hi=1, lo_open=True, hi_open=True)
        check_range("upper", self.upper, lo=self.lower, hi=1, lo_open=True, hi_open=True)
        check_range("k", self.k, lo=1, integer=True, what="neighbours per gene")
        check_range("umap_epochs", self.umap_epochs, lo=0, integer=True)
        check_range("umap_min_dist", self.umap_min_dist, lo=0)
        for r in self.resolutions:
            check_range("resolutions", r, lo=0, lo_open=True)
        check_range("min_set_size", self.min_set_size, lo=1, integer=True)
        check_range("max_set_size", self.max_set_size, lo=self.min_set_size, integer=True, what=">= --min-set-size")
        check_range("top_terms", self.top_terms, lo=1, integer=True)
        check_range("seed", self.seed, lo=0, integer=True)

    def standardises(self, name: str) -> bool:
        """Whether matrix `name` has its columns z-scored before the PCA (default True)."""
        return dict(self.standardise).get(name, True)


def choose_ranks(names: list[str], widths: dict[str, int], params: BundleParams,
                 best: dict[str, dict]) -> dict[str, int]:
    """The rank per matrix used for kNN/UMAP/modules: explicit override, else policy."""
    explicit = dict(params.chosen_ranks)
    out = {}
    for n in names:
        if n in explicit:
            r = explicit[n]
        elif params.rank_policy == "best" and best.get(n, {}).get("rank"):
            r = best[n]["rank"]
        else:
            r = PAPER_RANKS.get(n, 256)
        out[n] = int(min(r, widths[n]))
    return out
