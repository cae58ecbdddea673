"""What a model does, read from the shapes (and names) of its outputs: which metric fits it.

* **detector**: the four outputs of ``TFLite_Detection_PostProcess`` (boxes ``(N, M, 4)``, classes
  ``(N, M)``, scores ``(N, M)``, count ``(N,)``), or raw heads: boxes ``(N, A, 4)`` (decoded corner boxes)
  beside per-class scores ``(N, A, C)`` for the same ``A`` anchors;
* **dense**: an output with the input's spatial size ``(N, H, W, ...)`` (image to image: denoising,
  segmentation, depth);
* **classifier**: one score per class ``(N, K)``, ``K >= 2``;
* **generic**: anything else (a regression, an embedding, a sequence of states).

Each output also gets its own kind (a model may have a classifier head beside a regression head);
``task=`` overrides the recognition and the record says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from . import checks

TASKS = ("classifier", "detector", "dense", "generic")
Shape = Sequence[int | None]


@dataclass(frozen=True)
class Task:
    """The task, why it was recognised, and each output's role (in the given output order).

    Roles: ``"boxes"``, ``"scores"``, ``"classes"``, ``"count"`` (a detector's), ``"classifier"``, ``"dense"``,
    ``"generic"``.
    """

    kind: str
    reason: str
    roles: tuple[str, ...]
    main: int = 0  # the output the headline (and a classifier's accuracy) is about

    def index(self, role: str) -> int | None:
        return self.roles.index(role) if role in self.roles else None

    @property
    def postprocessed(self) -> bool:
        """The detector's outputs went through ``TFLite_Detection_PostProcess`` (a count output)."""
        return "count" in self.roles


def recognise(outputs: Sequence[tuple[str, Shape]], input_shape: Shape | None = None,
              task: str | None = None) -> Task:
    """The ``Task`` of a model with ``outputs`` (``(name, shape)`` pairs, batch first) reading ``input_shape``
    (batch first). ``task``: the caller's word for it (``TASKS``), which wins.

    Raises:
        ValueError: a ``task`` not in ``TASKS``; ``task="detector"`` for outputs with no box output.
    """
    if task is not None:
        checks.choice("task", task, TASKS)
    shapes = [tuple(s) if s is not None else () for _, s in outputs]
    names = [str(n).lower() for n, _ in outputs]
    roles = [_own_kind(s, input_shape) for s in shapes]
    detector = _detector(names, shapes)
    if detector is not None and task in (None, "detector"):
        found, why = detector
        roles = [found.get(i, r) for i, r in enumerate(roles)]
        said = "given as --task detector; " if task else ""
        return Task("detector", said + why, tuple(roles))
    if task == "detector":
        raise ValueError(f"task='detector' for outputs of shapes {shapes}; allowed: a model with a box output "
                         "(N, M, 4) and scores, or the four outputs of TFLite_Detection_PostProcess")
    first = shapes[0] if shapes else ()
    if task is not None:
        return Task(task, f"given as --task {task}", tuple(task if i == 0 else r for i, r in enumerate(roles)))
    kind = roles[0] if roles else "generic"
    why = {"classifier": f"its output is one score per class {_shape(first)}",
           "dense": f"its output {_shape(first)} has the input's spatial size {_shape(input_shape)}",
           "generic": f"its output {_shape(first)} is neither one score per class nor the input's size"}[kind]
    return Task(kind, why, tuple(roles))


def main_output(task: Task, values: Sequence, top_label: int | None = None) -> Task:
    """``task`` with its ``main`` output chosen from the reference's output ``values``: a detector's scores; else,
    with labels up to ``top_label``, the first classifier output with more classes than that (one whose rows are
    probabilities first); else the first classifier output that gives probabilities, else the first output."""
    from dataclasses import replace

    from .fidelity import is_probability

    if task.kind == "detector":
        return replace(task, main=task.index("scores"))
    classifiers = [i for i, role in enumerate(task.roles) if role == "classifier"]
    if top_label is not None:
        classifiers = [i for i in classifiers if values[i].reshape(len(values[i]), -1).shape[1] > top_label]
    probabilities = [i for i in classifiers if is_probability(values[i].reshape(len(values[i]), -1))]
    chosen = (probabilities or classifiers or [0])[0]
    if chosen == 0:
        return task
    why = "the labels' classes" if top_label is not None else "its probabilities"
    return replace(task, main=chosen, reason=f"{task.reason}; measured on output {chosen} ({why})")


def _own_kind(shape: tuple, input_shape: Shape | None) -> str:
    if len(shape) == 2 and shape[1] is not None and shape[1] >= 2:
        return "classifier"
    if (input_shape is not None and len(input_shape) >= 3 and len(shape) >= 3
            and tuple(shape[1:3]) == tuple(input_shape[1:3]) and None not in shape[1:3]):
        return "dense"
    return "generic"


def _detector(names: list[str], shapes: list[tuple]) -> tuple[dict[int, str], str] | None:
    """The roles of a detector's outputs and why, or ``None``."""
    boxes = [i for i, s in enumerate(shapes) if len(s) == 3 and s[2] == 4]
    if len(shapes) == 4 and len(boxes) == 1:
        b = boxes[0]
        m = shapes[b][1]
        pairs = [i for i, s in enumerate(shapes) if len(s) == 2 and s[1] == m]
        counts = [i for i, s in enumerate(shapes) if len(s) == 1]
        if len(pairs) == 2 and len(counts) == 1:
            named = [i for i in pairs if "score" in names[i]]
            # TFLite_Detection_PostProcess writes boxes, classes, scores, count: the scores come after the classes
            scores = named[0] if len(named) == 1 else pairs[1]
            classes = pairs[0] if scores == pairs[1] else pairs[1]
            return ({b: "boxes", classes: "classes", scores: "scores", counts[0]: "count"},
                    f"four outputs like TFLite_Detection_PostProcess's: boxes {_shape(shapes[b])}, classes and "
                    f"scores {_shape(shapes[classes])}, count {_shape(shapes[counts[0]])}")
    for b in boxes:
        anchors = shapes[b][1]
        heads = [i for i, s in enumerate(shapes) if i != b and len(s) == 3 and s[1] == anchors and (s[2] or 0) >= 2]
        if len(heads) == 1:
            s = heads[0]
            return ({b: "boxes", s: "scores"},
                    f"raw detection heads: boxes {_shape(shapes[b])} and per-class scores {_shape(shapes[s])} for "
                    f"the same {anchors} anchors (boxes read as decoded [ymin, xmin, ymax, xmax])")
    return None


def _shape(shape: Shape | None) -> str:
    if shape is None:
        return "(unknown)"
    return "(" + ", ".join("N" if i == 0 else ("?" if d is None else str(d)) for i, d in enumerate(shape)) + ")"
