"""Training precision: float32, or bfloat16 compute with float32 weights (Keras's `mixed_bfloat16`).

Why: on a CPU with AMX or AVX-512 BF16 (the Intel Xeon of the sixteenth and seventeenth sessions), an epoch
of the wide multi-task gender network took 1.45 times less time in bfloat16 (docs/training/HISTORY.md,
"Training tools, measured"). The weights themselves stay float32
under the mixed policy, so a network trained this way is rebuilt as plain float32 (`as_precision`) before it
is exported, used as a teacher or joined into an ensemble: the shipped files and their int8 conversion never
depend on how they were trained. The output heads always compute in float32, so softmax and the loss keep
their precision.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

PRECISIONS = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


def output_layer_names(model) -> set[str]:
    """Names of the layers whose outputs are the model's outputs."""
    outputs = model.outputs if isinstance(model.outputs, list) else [model.outputs]
    return {tensor._keras_history.operation.name for tensor in outputs}


def rebuilt(model, edit: Callable[[dict[str, Any]], None]):
    """The same network with the same weights, built again from its config after `edit` changed each layer's
    entry (`{"class_name", "name", "config", ...}`) in place."""
    config = model.get_config()
    for layer in config["layers"]:
        edit(layer)
    copy = model.__class__.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def as_precision(model, precision: str):
    """`model` computing in `precision` ("float32" or "bfloat16"), its output layers in float32; the model
    itself when it already does."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    outputs = output_layer_names(model)
    layers = [layer for layer in model.layers if layer.__class__.__name__ != "InputLayer"]
    wanted = {layer.name: "float32" if layer.name in outputs else PRECISIONS[precision] for layer in layers}
    if all(layer.dtype_policy.name == wanted[layer.name] for layer in layers):
        return model

    def set_policy(layer: dict[str, Any]) -> None:
        if layer["class_name"] != "InputLayer":
            layer["config"]["dtype"] = wanted[layer["config"]["name"]]

    return rebuilt(model, set_policy)
