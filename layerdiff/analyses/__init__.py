"""Analyses over inspect reports and merged views: they never open files.

audit     findings a user should act on before pushing an image
budget    size budgets and growth against a baseline, for CI
compare   two images, path by path and layer by layer
why       the provenance of one path through the layers
"""

from .audit import RULES, AuditResult, audit_image
from .budget import BudgetResult, CheckResult, check_budgets, read_baseline
from .compare import Comparison, compare_images, match_layers
from .why import Provenance, why_path

__all__ = [
    "RULES",
    "AuditResult",
    "audit_image",
    "BudgetResult",
    "CheckResult",
    "check_budgets",
    "read_baseline",
    "Comparison",
    "compare_images",
    "match_layers",
    "Provenance",
    "why_path",
]
