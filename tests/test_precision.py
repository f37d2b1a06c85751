"""Training in bfloat16: hidden layers compute in bfloat16, the output heads and everything exported in
float32, with the very weights the run trained."""

from __future__ import annotations

import numpy as np
import pytest
from test_trained import pooled_net

from training.precision import as_precision


def policies(model) -> dict[str, str]:
    return {layer.name: layer.dtype_policy.name for layer in model.layers if layer.__class__.__name__ != "InputLayer"}


def test_bfloat16_keeps_the_weights_and_the_heads_in_float32_and_converts_back_exactly():
    from training.auxiliary import with_heads

    model = with_heads(pooled_net(classes=2), "gender", ("race",))
    mixed = as_precision(model, "bfloat16")
    assert {name: policy for name, policy in policies(mixed).items() if policy == "float32"} == {
        "probs": "float32",
        "aux_race": "float32",
    }
    assert set(policies(mixed).values()) == {"float32", "mixed_bfloat16"}
    assert all(w.dtype == np.float32 for w in mixed.get_weights())
    faces = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    plain = as_precision(mixed, "float32")
    assert set(policies(plain).values()) == {"float32"}
    expected, back = model.predict(faces, verbose=0), plain.predict(faces, verbose=0)
    for head in expected:
        np.testing.assert_array_equal(back[head], expected[head])  # the same float32 weights, bit for bit
        assert np.abs(mixed.predict(faces, verbose=0)[head] - expected[head]).max() < 0.02  # bfloat16 rounding
    assert as_precision(plain, "float32") is plain


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="float16"):
        as_precision(pooled_net(), "float16")
