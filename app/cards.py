"""Gene cards (a gene's official name and its pages at NCBI Gene, Ensembl, UniProt and GeneCards), and a
gene list opened in STRING and Enrichr: every outside link the app makes.

Links are built from the bundle's identifiers (Entrez id for NCBI Gene when known, else a symbol search;
the Ensembl id for Ensembl; the symbol for UniProt, GeneCards and STRING), every identifier URL-encoded
(or HTML-escaped in the Enrichr form), and the card's text escaped (app.text), so a gene name from a data
file can never become a link of its own. The server fetches nothing: the browser opens the link, or posts
the form, when the user clicks.
"""
from __future__ import annotations

from urllib.parse import quote

import pandas as pd

from app.text import esc, plain

HUMAN_TAXON = 9606
STRING_MAX_GENES = 500          # STRING draws up to a few hundred proteins legibly; the URL stays under 8 KB
ENRICHR_ACTION = "https://maayanlab.cloud/Enrichr/enrich"   # Enrichr's form for linking a list from another site


def links(symbol: str, ensembl_id: str = "", entrez_id: str = "") -> dict[str, str]:
    """{site: URL} for one gene; Ensembl only when the id is known."""
    s = quote(str(symbol), safe="")
    out = {"NCBI Gene": (f"https://www.ncbi.nlm.nih.gov/gene/{quote(str(entrez_id), safe='')}" if str(entrez_id).isdigit()
                         else f"https://www.ncbi.nlm.nih.gov/gene/?term={s}%5Bsym%5D+AND+human%5Borgn%5D")}
    if ensembl_id:
        out["Ensembl"] = f"https://www.ensembl.org/Homo_sapiens/Gene/Summary?g={quote(str(ensembl_id), safe='')}"
    out["UniProt"] = f"https://www.uniprot.org/uniprotkb?query=gene_exact:{s}+AND+organism_id:{HUMAN_TAXON}"
    out["GeneCards"] = f"https://www.genecards.org/cgi-bin/carddisp.pl?gene={s}"
    return out


def card_text(genes: pd.DataFrame, row: int) -> str:
    """Markdown of the card's text, every data value escaped: **SYMBOL** · official name · Ensembl id."""
    g = genes.iloc[int(row)]
    parts = [f"**{esc(g['symbol'])}**"]
    for col in ("name", "ensembl_id"):
        v = str(g.get(col, "") or "")
        if v:
            parts.append(esc(v))
    return " · ".join(parts)


def card_links(genes: pd.DataFrame, row: int) -> dict[str, str]:
    """{site: URL} of one gene of a bundle's genes table."""
    g = genes.iloc[int(row)]
    return links(str(g["symbol"]), str(g.get("ensembl_id", "") or ""), str(g.get("entrez_id", "") or ""))


def show_card(genes: pd.DataFrame, row: int) -> None:
    """The gene card: its text, then one link button per site (links are never Markdown built from data)."""
    import streamlit as st
    st.markdown(card_text(genes, row))
    with st.container(horizontal=True):
        for site, url in card_links(genes, row).items():
            st.link_button(site, url, icon=":material/open_in_new:")


def with_cards(table: pd.DataFrame, genes: pd.DataFrame, rows, after: str = "gene") -> pd.DataFrame:
    """``table`` with each gene's official name and its NCBI Gene and GeneCards pages (LinkColumn URLs)
    inserted after the ``after`` column; ``rows`` are the table's gene rows in the bundle."""
    g = genes.iloc[list(map(int, rows))]
    out = table.copy()
    at = list(out.columns).index(after) + 1
    out.insert(at, "name", g["name"].to_numpy() if "name" in g else "")
    ncbi = [links(s, e, z)["NCBI Gene"] for s, e, z in zip(g["symbol"], g.get("ensembl_id", ""), g.get("entrez_id", ""))]
    out.insert(at + 1, "NCBI Gene", ncbi)
    out.insert(at + 2, "GeneCards", [links(s)["GeneCards"] for s in g["symbol"]])
    return out


def link_columns() -> dict:
    """column_config entries for the link columns of :func:`with_cards`."""
    import streamlit as st
    return {"name": st.column_config.TextColumn("name", width="medium"),
            "NCBI Gene": st.column_config.LinkColumn("NCBI Gene", display_text="NCBI", width="small"),
            "GeneCards": st.column_config.LinkColumn("GeneCards", display_text="GeneCards", width="small")}


def string_url(genes) -> str:
    """STRING's network page for a list of human genes (symbols, one ``%0d``-separated ``identifiers``
    parameter, each URL-encoded); at most STRING_MAX_GENES: pass the genes to show, most important first."""
    genes = [str(g) for g in genes][:STRING_MAX_GENES]
    ids = "%0d".join(quote(g, safe="") for g in genes)
    return f"https://string-db.org/cgi/network?identifiers={ids}&species={HUMAN_TAXON}"


def enrichr_form(genes, description: str, label: str = "Enrichr") -> str:
    """A one-button HTML form that posts a gene list to Enrichr in a new tab (Enrichr's own way for another
    site to open a list: fields ``list``, one gene a line, and ``description``). Every value is
    HTML-escaped; nothing is sent until the user clicks."""
    listed = plain("\n".join(str(g) for g in genes))
    return (
        '<html><body style="margin:0">'
        f'<form action="{ENRICHR_ACTION}" method="post" enctype="multipart/form-data" target="_blank">'
        f'<textarea name="list" style="display:none">{listed}</textarea>'
        f'<input type="hidden" name="description" value="{plain(description)}">'
        '<button type="submit" title="Opens Enrichr in a new tab with these genes" style="font:400 14px '
        '\'Source Sans Pro\',\'Source Sans 3\',sans-serif;height:2.5rem;padding:0.25rem 0.75rem;'
        'background:#fff;color:rgb(49,51,63);border:1px solid rgba(49,51,63,0.2);border-radius:0.5rem;'
        f'cursor:pointer">&#8599; {plain(label)}</button></form></body></html>')
