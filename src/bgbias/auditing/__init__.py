"""`bgbias audit`: how much any embedding model relies on backgrounds, on any image folder
(conditions after the ImageNet backgrounds challenge, made for retrieval).

Modules, in the order an audit runs: :mod:`.models` (user models as Embedders), :mod:`.plan`
(every input checked, nothing written), :mod:`.compute` (images, conditions, embeddings,
:mod:`.score`, :mod:`.verdict`), :mod:`.save` (:mod:`.report` and :mod:`.figures` built beside
the old report, swapped in at the end); :mod:`.api` ties them together.
"""

from .api import AuditResult, ConditionMetrics, ModelAudit, audit, run_audit
from .conditions import CONDITIONS, ConditionMaker
from .images import ImageSet, find_images
from .plan import AuditConfig
from .verdict import THRESHOLDS, Thresholds, Verdict, verdict

__all__ = [
    "CONDITIONS",
    "THRESHOLDS",
    "AuditConfig",
    "AuditResult",
    "ConditionMaker",
    "ConditionMetrics",
    "ImageSet",
    "ModelAudit",
    "Thresholds",
    "Verdict",
    "audit",
    "find_images",
    "run_audit",
    "verdict",
]
