"""The generator of ``docs/``'s generated pages, one module per concern; ``scripts/gen_docs.py`` is
its command (see :mod:`docgen.targets` for the list of generated files)."""
