"""Hydra configs shipped inside the package (the search path entry `pkg://clarena.configs`).

Groups mirror the package: `cl_dataset/`, `backbone/`, `cl_algorithm/`, `optimizer/`, `trainer/`,
`logger/`, `callbacks/`, `hydra/`, `experiment/`; `train.yaml` is the primary config. The top-level
`configs` folder of the repository is a link to this one.
"""
