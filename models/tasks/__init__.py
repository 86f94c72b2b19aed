"""Task kinds (retrieval, binary, ESMM, regression): one module per kind behind a registry.

Importing this package does not import TensorFlow; a kind's module (its loss layer) loads
when the kind is first asked for.
"""

from mtlrec.models.tasks.registry import (
    CONFIG_KINDS,
    kind_named,
    kind_of,
    metric_direction,
    validate_tasks,
)

__all__ = ["CONFIG_KINDS", "kind_named", "kind_of", "metric_direction", "validate_tasks"]
