"""New items and missing modalities: what MILK is made of.

* :mod:`~invrec.multimodal.content_model`: :class:`MultimodalContentModel`, users against
  per-modality content representations of items (no item ids);
* :mod:`~invrec.multimodal.mixup`: the modality mixtures MILK trains under (cyclic Dirichlet
  weightings of the modalities, called "environments" in the MILK paper) and the
  missing-modality mixtures;
* :mod:`~invrec.multimodal.alignment`: the cross-modality alignment term;
* :mod:`~invrec.multimodal.imputation`: :class:`CrossModalImputer`, a missing modality predicted
  from the item's available ones.
"""

from .alignment import cross_modality_alignment
from .content_model import MultimodalContentModel
from .imputation import CrossModalImputer
from .mixup import (cyclic_mixtures, missing_modality_scores, sample_cyclic_mixtures, sample_dirichlet,
                    sample_missing_masks)

__all__ = ["CrossModalImputer", "MultimodalContentModel", "cross_modality_alignment",
           "cyclic_mixtures", "missing_modality_scores", "sample_cyclic_mixtures", "sample_dirichlet",
           "sample_missing_masks"]
