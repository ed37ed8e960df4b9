"""The bundle contract, the one torch-free owner of the bundle folder (docs/formats.md "Bundle"):

* ``files``: every path of the layout, the manifest, atomic writes and finalising a build;
* ``validate``: the checks every reader relies on;
* ``reader``: lazy read-only access (``open_bundle``, ``Bundle``), what the app uses;
* ``compare``: the one comparison of two bundles (the app's Compare page and ``precompute compare``);
* ``enrichment``: the statistics behind the enrichment tables (hypergeometric test, BH q-values),
  which the app reruns on a pasted gene list;
* ``synthetic``: bundles with known structure for tests and benchmarks.

Importing any of them pulls in numpy, pandas and pyarrow only (``synthetic``'s writers import the
pipeline, and with it torch, when called). ``precompute.pipeline`` writes bundles through ``files``.
"""
