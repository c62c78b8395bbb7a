"""Continual-learning algorithms and the regularizers they are composed from."""
