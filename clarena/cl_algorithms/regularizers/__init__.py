"""Regularizers: small `nn.Module`s over tensors, each with a functional twin of the same math.

- `DistillationReg` / `distillation_reg`: LwF's cross-entropy and DER's MSE on logits.
- `BCNewErrorReg` / `new_error_dissonance` and `StrictImitationReg` /
  `strict_imitation_dissonance`: the backward-compatibility dissonance of Srivastava et al. (2020),
  with the per-sample pieces (`base_loss`, `support_mask`, `imitation_divergence`,
  `bc_loss_terms`) that `clarena.losses` and the BC algorithms reuse.
- `ParameterChangeReg` / `parameter_change_reg`: L2 and (online) EWC, with
  `online_fisher_update`.
- `FocalDistillationKLReg` / `focal_distillation_kl` and `FocalDistillationLMReg` /
  `focal_distillation_lm`: the focal distillation of Positive-Congruent Training (Yan et al.,
  2021), with its per-sample weight `focal_weight`.
- `LogitDifferenceInhibitionReg` / `logit_difference_inhibition`: ELODI's distillation towards an
  ensemble on the top-K logits (Zhao et al., 2022), with `ensemble_logits` and `top_k_union`.
- `interpolate_weights` and `choose_alpha`: backward-compatible weight interpolation (BCWI,
  Schumann et al., 2024).
"""

from clarena.cl_algorithms.regularizers.bc_dissonance import (
    LOSSES,
    OUTPUTS,
    BCNewErrorReg,
    StrictImitationReg,
    base_loss,
    bc_loss_terms,
    imitation_divergence,
    new_error_dissonance,
    strict_imitation_dissonance,
    support_mask,
)
from clarena.cl_algorithms.regularizers.bcwi import SELECTIONS, choose_alpha, interpolate_weights
from clarena.cl_algorithms.regularizers.distillation import (
    DISTANCES,
    DistillationReg,
    distillation_reg,
)
from clarena.cl_algorithms.regularizers.elodi import (
    LogitDifferenceInhibitionReg,
    ensemble_logits,
    logit_difference_inhibition,
    top_k_union,
)
from clarena.cl_algorithms.regularizers.focal_distillation import (
    FocalDistillationKLReg,
    FocalDistillationLMReg,
    focal_distillation_kl,
    focal_distillation_lm,
    focal_weight,
)
from clarena.cl_algorithms.regularizers.parameter_change import (
    ParameterChangeReg,
    online_fisher_update,
    parameter_change_reg,
)

__all__ = [
    "DISTANCES",
    "LOSSES",
    "OUTPUTS",
    "SELECTIONS",
    "BCNewErrorReg",
    "DistillationReg",
    "FocalDistillationKLReg",
    "FocalDistillationLMReg",
    "LogitDifferenceInhibitionReg",
    "ParameterChangeReg",
    "StrictImitationReg",
    "base_loss",
    "bc_dissonance",
    "bc_loss_terms",
    "bcwi",
    "choose_alpha",
    "distillation",
    "distillation_reg",
    "elodi",
    "ensemble_logits",
    "focal_distillation",
    "focal_distillation_kl",
    "focal_distillation_lm",
    "focal_weight",
    "imitation_divergence",
    "interpolate_weights",
    "logit_difference_inhibition",
    "new_error_dissonance",
    "online_fisher_update",
    "parameter_change",
    "parameter_change_reg",
    "strict_imitation_dissonance",
    "support_mask",
    "top_k_union",
]
