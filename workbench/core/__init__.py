"""The core: data, models, training, the recipe registry, conversion, LiteRT access, evaluation, diagnosis.

Nothing here imports from ``explore``, ``troubleshoot`` or ``cli``."""
