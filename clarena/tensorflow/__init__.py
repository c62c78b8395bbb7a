"""The TensorFlow/Keras interface (`pip install clarena[tensorflow]`); it never imports torch.

- `clarena.tensorflow.models`: `BCNewErrorCompatibilityModel` and
  `StrictImitationCompatibilityModel`, Keras `Sequential`s whose `compile()`/`fit()` train
  backward-compatibly with respect to a reference model `h1`.
- `clarena.tensorflow.tf_helpers`: `bc_fit`, which trains any Keras model with a BC loss and scores
  accuracy, BTC, BEC, NFR, PFR and NFI against `h1` after every epoch.
- `clarena.tensorflow.losses`: the eight BackwardCompatibilityML-named losses (`BCCrossEntropyLoss`,
  `StrictImitationKLDivergenceLoss`, ...) with the PyTorch classes' math, taking probabilities
  (`from_logits=True` for logits), and the original TensorFlow package's names as aliases.
- `clarena.tensorflow.dissonance`: the formulas, once.
- `clarena.tensorflow.focal_distillation`: FD-KL and FD-LM (Positive-Congruent Training), the
  twins of the PyTorch regularizers, and the losses `FocalDistillationKLLoss` and
  `FocalDistillationLMLoss`.

Importing TensorFlow before torch in one process aborts the interpreter; import torch first when a
program needs both.
"""

from clarena.tensorflow import dissonance, focal_distillation, losses, models, tf_helpers
from clarena.tensorflow.focal_distillation import FocalDistillationKLLoss, FocalDistillationLMLoss
from clarena.tensorflow.losses import (
    BCBinaryCrossEntropyLoss,
    BCCrossEntropyLoss,
    BCKLDivergenceLoss,
    BCKLDivLoss,
    BCNLLLoss,
    BCStrictImitationBinaryCrossEntropyLoss,
    BCStrictImitationCrossEntropyLoss,
    BCStrictImitationKLDivLoss,
    BCStrictImitationNLLLoss,
    StrictImitationBinaryCrossEntropyLoss,
    StrictImitationCrossEntropyLoss,
    StrictImitationKLDivergenceLoss,
    StrictImitationNLLLoss,
)
from clarena.tensorflow.models import (
    BCNewErrorCompatibilityModel,
    BCStrictImitationCompatibilityModel,
    StrictImitationCompatibilityModel,
)
from clarena.tensorflow.tf_helpers import bc_fit, compatibility_scores

__all__ = [
    "BCBinaryCrossEntropyLoss",
    "BCCrossEntropyLoss",
    "BCKLDivLoss",
    "BCKLDivergenceLoss",
    "BCNLLLoss",
    "BCNewErrorCompatibilityModel",
    "BCStrictImitationBinaryCrossEntropyLoss",
    "BCStrictImitationCompatibilityModel",
    "BCStrictImitationCrossEntropyLoss",
    "BCStrictImitationKLDivLoss",
    "BCStrictImitationNLLLoss",
    "FocalDistillationKLLoss",
    "FocalDistillationLMLoss",
    "StrictImitationBinaryCrossEntropyLoss",
    "StrictImitationCompatibilityModel",
    "StrictImitationCrossEntropyLoss",
    "StrictImitationKLDivergenceLoss",
    "StrictImitationNLLLoss",
    "bc_fit",
    "compatibility_scores",
    "dissonance",
    "focal_distillation",
    "losses",
    "models",
    "tf_helpers",
]
