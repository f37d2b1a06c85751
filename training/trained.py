"""Trained models named on the command line (`--init-from`, `--teacher`): loaded, checked against the task,
and if need be rebuilt for the run's face size."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from inference.errors import WeightsError


def load_trained(
    path: Path,
    option: str,
    input_shape: tuple[int, ...],
    n_classes: int,
    task: str = "",
    aux: Sequence[str] = (),
    new_head: bool = False,
):
    """A trained model named on the command line (`option` is the flag, for the message), as a Keras model,
    after checking it takes this task's colour and predicts its classes; a model trained at another face size
    is rebuilt for this one (`at_input_size`). A multi-task checkpoint (a run folder's `best.keras`) comes
    back with `task` as its main head and `aux` as its auxiliary heads, trained heads kept (`with_heads`).
    `FILE#INDEX` is one network of a shipped ensemble, so it can be trained on after its run folder is gone.
    With `new_head`, a network of another task comes back with its trunk and a fresh `task` head."""
    import keras

    from training.auxiliary import MAIN_OUTPUT, with_heads
    from training.ensemble import base_name, networks_of, select_networks, split_selection
    from training.precision import as_precision

    file, index = split_selection(Path(path))
    if not file.is_file():
        raise WeightsError(f"{option} {path}: no such model file")
    try:
        model = keras.saving.load_model(file, compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - any load failure means unusable weights
        raise WeightsError(f"{option} {path}: cannot load ({type(exc).__name__}: {exc})") from exc
    if index is not None:
        try:
            [model] = select_networks(networks_of(model), index, Path(path))
        except WeightsError as exc:
            raise WeightsError(f"{option} {exc}") from exc
        model.name = base_name(model.name)  # the network's own name, not its place in the ensemble
    model = as_precision(model, "float32")  # a network trained in bfloat16 serves here as plain float32
    if isinstance(model.output, dict) or new_head:
        try:
            model = with_heads(model, task, aux, new_head)
        except WeightsError as exc:
            raise WeightsError(f"{option} {path}: {exc}") from exc
    units = model.get_layer(MAIN_OUTPUT).output.shape[-1] if isinstance(model.output, dict) else model.output_shape[-1]
    if units != n_classes or model.input_shape[-1] != input_shape[-1]:
        raise WeightsError(
            f"{option} {path}: takes {model.input_shape[1:]} -> {units} classes, "
            f"this task needs {tuple(input_shape)} -> {n_classes}"
        )
    if tuple(model.input_shape[1:]) != tuple(input_shape):
        return at_input_size(model, input_shape, option, path)
    return model


def at_input_size(model, input_shape: tuple[int, ...], option: str, path: Path):
    """The same network with the same weights, built for a different face size.

    Why: a fully convolutional net (global pooling before its classifier) has no weight that depends on
    the input size, so a model trained at 64 px can be fine-tuned at 96 px in a fraction of the epochs a
    new run would need. A net whose weights do depend on it (Flatten + Dense) cannot, and says so.
    """
    from training.precision import rebuilt

    def set_input_shape(layer: dict) -> None:
        if layer["class_name"] == "InputLayer":
            layer["config"]["batch_shape"] = [None, *input_shape]

    try:
        return rebuilt(model, set_input_shape)
    except Exception as exc:  # noqa: BLE001 - any failure means the weights depend on the input size
        raise WeightsError(
            f"{option} {path}: takes {model.input_shape[1:]}, and its weights cannot serve {tuple(input_shape)} "
            f"({type(exc).__name__})"
        ) from exc
