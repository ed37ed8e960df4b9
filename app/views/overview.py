"""Overview: model card, training loss, recall per source (with chance), spectrum of each matrix."""
import pandas as pd
import plotly.express as px
import streamlit as st

from app import charts, ui
from app.text import code, codes, esc, plain

st.title("Overview")
bundles = ui.require_bundles()

GLOSSARY = {
    "Bundle": "Everything precomputed from one trained model (or the PCA baseline) for this app: gene matrices, "
              "their neighbours, maps, modules and scores. Pick bundles in the sidebar; the first one is shown.",
    "Codebook": "TxFM's input embedding: one learned vector per gene, what the model reads a gene as. At our scale "
                "it learns little (see its badge).",
    "Decoder": "TxFM's output weights: one vector per gene used to predict that gene's expression from the "
               "cell's state. Genes predicted from the same cell states end up close together.",
    "PCA": "The baseline: principal components of the same expression data, one vector per gene. A model is "
           "worth using where it beats PCA.",
    "Rank": "How many principal directions of a matrix are used to compare genes. Each matrix has a chosen rank "
            "(the one that recovers known relationships best); the Subspaces page shows the others.",
}
with st.container(border=True):
    st.subheader("Start here")
    left, right = st.columns([2, 3])
    with left:
        ui.gene_search(bundles[0], then="views/neighbourhood.py")
        st.caption("A gene opens its neighbourhood: the genes each matrix places nearest to it, known partners "
                   "marked. The badges below say how far to trust each matrix.")
        for m in bundles[0].matrix_names:
            ui.quality_badge(bundles[0], m)
    with right:
        for term, text in GLOSSARY.items():
            st.markdown(f"**{term}.** {text}")

for b in bundles:
    st.header(f"Bundle {code(b.name)}")
    src = b.manifest.get("source", {})
    mc = src.get("model_config", {}) or {}
    corpus = src.get("corpus", {}) or {}
    c = st.columns(5)
    c[0].metric("Kind", str(src.get("kind", "?")))
    tc = src.get("train_config", {}) or {}
    preset = tc.get("preset") or mc.get("preset") or ("PCA" if src.get("kind") == "pca" else "—")
    c[1].metric("Preset", str(preset))
    c[2].metric("Parameters", f"{int(src['n_parameters']):,}" if src.get("n_parameters") else "—")
    c[3].metric("Genes", f"{b.n_genes:,}")
    c[4].metric("Samples seen", f"{int(src['samples_seen']):,}" if src.get("samples_seen") else "—")
    with st.expander("Model card (checkpoint, configuration, training corpus)"):
        st.markdown(f"**Checkpoint** {code(src.get('checkpoint', '?'))}  \n**sha256** {code(src.get('sha256', '') or '—')}  \n"
                    f"**Bundle created** {esc(b.manifest.get('created', '?'))}")
        st.markdown("**Training corpus**")
        st.json(corpus, expanded=False)
        st.markdown("**Model configuration**")
        st.json(mc, expanded=False)
        st.markdown("**Training configuration**")
        st.json(src.get("train_config", {}), expanded=False)
        steps = pd.DataFrame([{"step": k, "seconds": v.get("seconds"), "finished": v.get("finished"),
                               "params": str(v.get("params", {}))} for k, v in b.manifest.get("steps", {}).items()])
        if not steps.empty:
            st.markdown("**Precompute steps**")
            st.dataframe(steps, hide_index=True)

    left, right = st.columns(2)
    with left:
        st.subheader("Training loss")
        if b.metrics.empty or "loss" not in b.metrics:
            st.info("No training/metrics.parquet in this bundle (the run's log was not available).")
        else:
            x = "step" if "step" in b.metrics else b.metrics.columns[0]
            fig = px.line(b.metrics, x=x, y="loss", markers=False, height=320)
            fig.update_layout(margin=dict(l=10, r=10, t=10, b=10))
            st.plotly_chart(fig, key=f"loss_{b.name}")
    with right:
        st.subheader("Recall of known relationships")
        if b.recall.empty:
            st.info("No recall/recall.parquet in this bundle.")
        else:
            st.plotly_chart(charts.recall_bars(b.recall, {m: b.default_rank(m) for m in b.matrix_names}), key=f"recall_{b.name}")
            st.caption("Recall at each matrix's chosen rank (the rank its neighbours were computed at; hover for it); dashed line = chance "
                       "(pairs outside the 5th-95th percentile of random pairs: about 10%). "
                       + esc(charts.recall_population(b.recall)))
    st.subheader("Spectrum of each gene matrix")
    if b.spectrum.empty:
        st.info("No subspaces/spectrum.parquet in this bundle.")
    else:
        st.plotly_chart(charts.spectrum(b.spectrum), key=f"spectrum_{b.name}")
