"""Bridges between clarena and other continual-learning libraries.

- `clarena.integrations.avalanche`: Avalanche plugins running clarena's distillation and
  backward-compatibility regularizers, and an adapter turning an Avalanche benchmark into a clarena
  `CLDataset` (needs the `avalanche` extra: `pip install "clarena[avalanche]"`).

Importing this package imports nothing heavy; import the submodule you need.
"""
