"""Code generators, shipped inside the package as cnndsl.backends (see pyproject.toml).

Each backend is a table from op name to emitter; tests check that every op in the registry has one.
"""
