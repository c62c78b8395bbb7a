"""The ground floor: facts and helpers shared by several wings, free of torch and TensorFlow.

Everything here imports only the standard library, so the PyTorch side, the TensorFlow side and
the command-line tools can all use it without pulling in a framework.

- `clarena.core.files`: atomic file writes that honour the umask, and one-line descriptions of
  operating-system errors.
"""
