"""How far to trust a gene matrix's neighbourhoods, said plainly: its honest recall against chance and
against the PCA baseline bundle of the same data (docs/app.md, "Quality badge").

The figures are each bundle's own best recall (``recall/best.json``: mean over the reference sources on
the genes measured well in >= 2 datasets). The PCA bundle is the one built from the same corpus (same
fingerprint) when there is one, else any PCA bundle in the folder; the Compare page scores two matrices
on exactly the same genes when the populations differ.
"""
from __future__ import annotations

from dataclasses import dataclass

from precompute.bundle.reader import Bundle

NOISE_MARGIN = 0.03      # recall within 3 points of chance (about 0.10) is indistinguishable from noise
WEAK_RATIO = 0.8         # below 80% of the PCA baseline: clearly worse than the baseline


@dataclass(frozen=True)
class Verdict:
    level: str           # "noise" | "weak" | "close" | "good" | "baseline" | "unknown"
    colour: str          # streamlit badge colour
    label: str           # the badge's text
    text: str            # one or two plain sentences


def verdict(recall: float | None, chance: float, pca: float | None, is_pca: bool = False) -> Verdict:
    """The badge for a matrix with best honest recall ``recall`` (``pca``: the PCA bundle's, if any)."""
    if recall is None:
        return Verdict("unknown", "gray", "not scored", "This matrix has no recall figure (no known pairs in its "
                       "references), so there is no measure of how far to trust its neighbourhoods.")
    if recall < chance + NOISE_MARGIN:
        return Verdict("noise", "red", "noise", f"Recall {recall:.3f} is at chance ({chance:.3f}): known partners "
                       "are no closer than random genes, so its neighbourhoods are noise. Use another matrix.")
    if is_pca:
        return Verdict("baseline", "blue", "PCA baseline", f"Recall {recall:.3f} (chance {chance:.3f}). This is the "
                       "PCA baseline: textbook neighbourhoods for well-measured genes; models are judged against it.")
    if pca is None:
        return Verdict("close", "orange", "above chance", f"Recall {recall:.3f}, above chance ({chance:.3f}); no PCA "
                       "bundle of the same data is in this folder to compare with, so how good that is is unknown.")
    ratio = recall / pca if pca > 0 else float("inf")
    if ratio < WEAK_RATIO:
        return Verdict("weak", "orange", f"weak: {ratio:.2f}x PCA", f"Recall {recall:.3f} vs {pca:.3f} for the PCA "
                       "baseline: it finds known biology, clearly less than PCA. Trust a neighbour when it is also a "
                       "known partner or also a PCA neighbour (Compare page).")
    if ratio < 1.0:
        return Verdict("close", "blue", f"close to PCA: {ratio:.2f}x", f"Recall {recall:.3f} vs {pca:.3f} for the PCA "
                       "baseline: about as trustworthy as PCA; check a striking neighbourhood against PCA's.")
    return Verdict("good", "green", f"{ratio:.2f}x PCA", f"Recall {recall:.3f} vs {pca:.3f} for the PCA baseline: at "
                   "least as good as PCA at placing known partners together.")


def best_recall(b: Bundle, matrix: str) -> float | None:
    """The matrix's best recall from ``recall/best.json``; None when absent or unreadable."""
    try:
        v = b.best.get(matrix, {}).get("recall")
    except (OSError, ValueError, AttributeError):
        return None
    return None if v is None else float(v)


def chance_of(b: Bundle) -> float:
    """The bundle's empirical chance level (about 0.10)."""
    rec = b.recall
    return float(rec["chance"].mean()) if len(rec) and "chance" in rec else 0.10


def pca_reference(b: Bundle, candidates: list[Bundle]) -> tuple[Bundle, float] | None:
    """(the PCA bundle to judge ``b`` against, its best recall): same corpus first, else any PCA bundle."""
    fp = (b.manifest.get("source", {}).get("corpus") or {}).get("fingerprint")
    pcas = [c for c in candidates if c.manifest.get("source", {}).get("kind") == "pca"
            and best_recall(c, "pca") is not None]
    same = [c for c in pcas if fp and (c.manifest["source"].get("corpus") or {}).get("fingerprint") == fp]
    pick = (same or pcas or [None])[0]
    return None if pick is None else (pick, best_recall(pick, "pca"))


MIN_SHARED_GENES = 3    # Compare needs at least this many genes in both bundles


def _kind(b: Bundle) -> str | None:
    return (b.manifest.get("source") or {}).get("kind")


def _fingerprint(b: Bundle) -> str | None:
    return ((b.manifest.get("source") or {}).get("corpus") or {}).get("fingerprint")


def _overlap(a: Bundle, b: Bundle) -> int:
    try:
        return len(set(a.symbols.tolist()) & set(b.symbols.tolist()))
    except (OSError, ValueError, KeyError):       # an unreadable genes table: not a candidate (its page says why)
        return 0


def txfm_and_pca(first: Bundle, candidates: list[Bundle]) -> tuple[Bundle, Bundle] | None:
    """The comparison a user brings to Compare: (a TxFM bundle with a decoder, a PCA baseline bundle) sharing
    genes, or None when the folder holds no such pair. ``first`` (the bundle the pages show) takes its side;
    the other side is a bundle of the same corpus (fingerprint) first, else any, in folder order."""
    if _kind(first) == "txfm" and "decoder" in first.matrix_names:
        side, want = first, "pca"
    elif _kind(first) == "pca":
        side, want = first, "txfm"
    else:
        return None
    others = [c for c in candidates if c.path != side.path and _kind(c) == want
              and (want == "pca" or "decoder" in c.matrix_names)]
    fp = _fingerprint(side)
    others.sort(key=lambda c: not (fp and _fingerprint(c) == fp))     # stable: same corpus first, then folder order
    other = next((c for c in others if _overlap(side, c) >= MIN_SHARED_GENES), None)
    if other is None:
        return None
    return (side, other) if want == "pca" else (other, side)


def matrix_verdict(b: Bundle, matrix: str, candidates: list[Bundle]) -> tuple[Verdict, Bundle | None]:
    """The badge of one matrix of ``b`` and the PCA bundle it was judged against."""
    is_pca = b.manifest.get("source", {}).get("kind") == "pca"
    ref = None if is_pca else pca_reference(b, candidates)
    return verdict(best_recall(b, matrix), chance_of(b), ref[1] if ref else None, is_pca), (ref[0] if ref else None)
