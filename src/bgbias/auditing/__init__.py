"""`bgbias audit`: how much any embedding model relies on backgrounds, on any image folder
(conditions after the ImageNet backgrounds challenge, made for retrieval)."""

from .conditions import CONDITIONS, ConditionMaker
from .images import ImageSet, find_images
from .run import AuditConfig, run_audit

__all__ = ["CONDITIONS", "AuditConfig", "ConditionMaker", "ImageSet", "find_images", "run_audit"]
