"""The method registry: every method builds from its name and explains the same players."""

from __future__ import annotations

import numpy as np
import pytest
from _models import open_clip_bpe_tokenizer, random_pil_image, tiny_open_clip_clip

from fixlip_captum.adapters import get_adapter
from fixlip_captum.interaction_values import FIxLIPInteractionValues
from fixlip_captum.methods import METHODS, get_method, method_names

CAPTION = "a red cat"
# Small settings so every method runs in well under a second on the tiny model.
FAST = {
    "fixlip": {"budget": 2**12},
    "shapley_values": {"budget": 200},
    "fsii": {"budget": 300},
    "kernel_shap": {"n_samples": 100},
    "shapley_value_sampling": {"n_samples": 1},
    "lime": {"n_samples": 100},
    "exclip": {"n_steps": 4},
    "integrated_gradients": {"n_steps": 8},
}


def test_registry_lists_every_method_with_matching_class_order():
    assert set(METHODS) == {
        "fixlip",
        "grad_eclip",
        "game",
        "exclip",
        "shapley_values",
        "fsii",
        "kernel_shap",
        "shapley_value_sampling",
        "feature_ablation",
        "lime",
        "integrated_gradients",
    }
    for name, spec in METHODS.items():
        assert spec.name == name
        assert spec.cls.name == name
        assert spec.cls.max_order == spec.order
        assert spec.kind in ("gradient", "perturbation")
        assert spec.cost
    assert set(method_names(order=2)) == {"fixlip", "exclip", "fsii"}
    assert "grad_eclip" in method_names(kind="gradient")


def test_unknown_method_raises():
    with pytest.raises(KeyError, match="registered"):
        get_method("gradcam", tiny_open_clip_clip(), open_clip_bpe_tokenizer())


def test_all_methods_explain_the_same_players():
    model, tok = tiny_open_clip_clip(), open_clip_bpe_tokenizer()
    adapter = get_adapter(model, tok)
    n_i, n_t = adapter.n_image_players, adapter.tokenize(CAPTION).n_players
    image = random_pil_image(9)
    v_full = None
    for name, spec in METHODS.items():
        iv = get_method(name, model, tok, **FAST.get(name, {})).attribute_interactions(
            image, CAPTION
        )
        assert isinstance(iv, FIxLIPInteractionValues), name
        assert iv.n_players == n_i + n_t, name
        assert iv.max_order == spec.order, name
        assert "-" not in iv.index, name
        assert np.all(np.isfinite(iv.values)), name
        assert iv.context is not None and iv.context.grid == adapter.patch_grid, name
        assert iv.context.token_labels == adapter.tokenize(CAPTION).labels, name
        if v_full is None:
            v_full = iv.context.v_full
        assert iv.context.v_full == pytest.approx(v_full, abs=1e-5), name
        orders = {len(t) for t in iv.interaction_lookup if t}
        assert max(orders) == spec.order, name
        if name == "exclip":  # only image-text pairs
            assert all(len(t) == 2 and t[0] < n_i <= t[1] for t in iv.interaction_lookup if t)


def test_defaults_are_overridable():
    m = get_method("game", tiny_open_clip_clip(), open_clip_bpe_tokenizer(), start_layer=0)
    assert m.start_layer == 0
    m = get_method("fsii", tiny_open_clip_clip(), open_clip_bpe_tokenizer())
    assert m.budget == METHODS["fsii"].defaults["budget"]


def test_classes_exported_lazily_and_second_order_attribute_is_first_order_view():
    from fixlip_captum.interaction_values import first_order_values
    from fixlip_captum.methods import FSII, GAME
    from fixlip_captum.methods.game import GAME as GameClass

    assert GAME is GameClass
    model, tok = tiny_open_clip_clip(), open_clip_bpe_tokenizer()
    explainer = FSII(model, tok, budget=300)
    image = random_pil_image(10)
    img, txt = explainer.attribute(image, CAPTION)
    phi = first_order_values(explainer.attribute_interactions(image, CAPTION), p=0.5)
    adapter = explainer.adapter
    assert img.shape == adapter.patch_grid
    np.testing.assert_allclose(img.reshape(-1).numpy(), phi[: adapter.n_image_players], rtol=1e-5)
    np.testing.assert_allclose(txt.numpy(), phi[adapter.n_image_players :], rtol=1e-5)


def test_fixlip_method_refuses_several_pairs():
    # FIxLIP itself returns a list for a list of captions; the one-pair method interface
    # must say so instead of handing a list to code that expects one explanation
    model, tok = tiny_open_clip_clip(), open_clip_bpe_tokenizer()
    method = get_method("fixlip", model, tok, **FAST["fixlip"])
    with pytest.raises(ValueError, match="one image-text pair, but the inputs hold 2 pairs"):
        method.attribute_interactions(random_pil_image(9), [CAPTION, "a blue dog"])
