"""The ego network's layout (app/network.py): neighbours placed by similarity around the query gene, and
labels placed where they overlap nothing (the real browser checks the drawn boxes, test_browser.py)."""
import numpy as np
import pytest

from app.network import (LABEL_GAP, MARGIN, HEIGHT, WIDTH, ego_positions, network_figure, place_labels,
                         similarity_graph, text_box)
from app.neighbours import top_k, unit_rows

PW, PH = WIDTH - MARGIN["l"] - MARGIN["r"], HEIGHT - MARGIN["t"] - MARGIN["b"]


def _ego(seed: int, k: int, n_genes: int = 400, names=None):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, 16)) * 2
    x = centres[rng.integers(0, 8, n_genes)] + rng.normal(size=(n_genes, 16))
    unit = unit_rows(x.astype(np.float32), 16)
    nb, _ = top_k(unit, 0, k)
    rows = np.concatenate([[0], nb])
    symbols = np.array(names(n_genes) if names else [f"GENE{i:05d}" for i in range(n_genes)], dtype=object)
    return unit, rows, symbols


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_neighbours_sit_farther_as_their_cosine_falls():
    unit, rows, _ = _ego(0, 20)
    xy = ego_positions(unit, rows, PW, PH)
    assert np.allclose(xy[0], [PW / 2, PH / 2])                       # the query gene in the middle
    cos = unit[rows[1:]] @ unit[rows[0]]
    # distance on the ellipse's normalised scale, before nodes were nudged apart: rank correlation ~1
    d = np.hypot((xy[1:, 0] - PW / 2) / (PW / 2 - 90), (xy[1:, 1] - PH / 2) / (PH / 2 - 40))
    r = np.corrcoef(np.argsort(np.argsort(-cos)), np.argsort(np.argsort(d)))[0, 1]
    assert r > 0.95
    assert (xy >= 0).all() and (xy[:, 0] <= PW).all() and (xy[:, 1] <= PH).all()


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [20, 40])
def test_labels_never_overlap_each_other_or_a_node(seed, k):
    unit, rows, symbols = _ego(seed, k)
    xy = ego_positions(unit, rows, PW, PH)
    texts = [str(symbols[r]) for r in rows]
    radii = np.array([10.0] + [6.5] * k)
    where = place_labels(xy, texts, [13] + [11] * k, radii, xy - xy[0], PW, PH, list(range(len(rows))))
    if k == 20:
        assert len(where) == 21                                        # every gene labelled at k = 20
    boxes = {i: (x - w / 2, y - h / 2, x + w / 2, y + h / 2) for i, (x, y, w, h) in where.items()}
    for i, a in boxes.items():
        assert a[0] >= 0 and a[1] >= 0 and a[2] <= PW and a[3] <= PH
        for j, b in boxes.items():
            if i < j:
                assert not _overlap(a, b), (texts[i], texts[j])
        for j in range(len(rows)):                                     # no label covers a node
            node = (xy[j, 0] - radii[j], xy[j, 1] - radii[j], xy[j, 0] + radii[j], xy[j, 1] + radii[j])
            assert not _overlap(a, node), (texts[i], texts[j])
        assert text_box(texts[i], 11)[0] >= 0.6 * 11 * len(texts[i])   # wide enough for any monospace font


def test_the_figure_labels_every_gene_at_k20_and_keeps_the_query_gene_distinct():
    unit, rows, symbols = _ego(1, 20)
    g = similarity_graph(unit, rows, symbols, 0.3, None, centre=int(rows[0]))
    xy = ego_positions(unit, rows, PW, PH)
    fig = network_figure(g, pos={str(symbols[r]): xy[i] for i, r in enumerate(rows)},
                         label_order=[str(symbols[r]) for r in rows])
    assert fig.layout.meta == {"labels_wanted": 21, "labels_drawn": 21}
    assert fig.layout.width == WIDTH and fig.layout.height == HEIGHT
    traces = {t.name: t for t in fig.data}
    assert list(traces["your gene"].x) == [xy[0, 0]] and traces["your gene"].marker.color == "#d62728"
    assert list(traces["your gene's label"].text) == [str(symbols[rows[0]])]
    assert len(traces["labels"].text) == 20 and traces["labels"].mode == "text"
    assert LABEL_GAP > 0


def test_a_crowded_graph_drops_labels_it_cannot_place_and_says_so():
    unit, rows, symbols = _ego(2, 120, names=lambda n: [f"A_VERY_LONG_GENE_NAME_{i}" for i in range(n)])
    g = similarity_graph(unit, rows, symbols, 0.9, None, centre=int(rows[0]))
    xy = ego_positions(unit, rows, PW, PH)
    fig = network_figure(g, pos={str(symbols[r]): xy[i] for i, r in enumerate(rows)},
                         label_order=[str(symbols[r]) for r in rows])
    meta = fig.layout.meta
    assert meta["labels_wanted"] == 40 and meta["labels_drawn"] < 40          # at most MAX_LABELS asked for
    drawn = [t for t in fig.data if t.name in ("labels", "your gene's label")]
    assert sum(len(t.text) for t in drawn) == meta["labels_drawn"]
    assert "your gene's label" in {t.name for t in drawn}                      # the query gene first, always
