"""Notebooks: HTML tables (the ``_repr_html_`` of leakguard's objects),
pandas DataFrames and the IPython magics. IPython and pandas are optional and
imported only when used."""
