"""The contract every registered model family keeps, on tiny random-init real models.

One row per family in ``tests/_models.py:MODEL_FAMILIES``; a new family is one module, one
registry row and one row there. Reference values come from the models themselves.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from _models import MODEL_FAMILIES, random_pil_image

from fixlip_captum import FIxLIP
from fixlip_captum.adapters import FAMILIES, UnsupportedModelError, family_of, get_adapter
from fixlip_captum.methods import ExCLIP
from fixlip_captum.methods._towers import AttentionRecorder, Towers

torch.set_num_threads(1)

CAPTION = "a photo of a cat"


@pytest.fixture(scope="module", params=sorted(MODEL_FAMILIES))
def family(request):
    build_model, build_tokenizer = MODEL_FAMILIES[request.param]
    model, tokenizer = build_model(), build_tokenizer()
    adapter = get_adapter(model, tokenizer)
    image = random_pil_image(3, width=40, height=40)
    return request.param, model, tokenizer, adapter, image


def _model_logit(model, tokenizer, adapter, image, text) -> float:
    """The model's own logit on its own inputs (not through the adapter's encoders)."""
    px = adapter.preprocess_image(image)
    ids, mask = text.input_ids[None], text.attention_mask[None]
    with torch.no_grad():
        if type(model).__module__.startswith("open_clip"):
            if hasattr(model, "text_decoder"):  # CoCa: its contrastive path only
                img, txt = model.encode_image(px), model.encode_text(ids)
                return float(model.logit_scale.exp() * img @ txt.T)
            out = model(px, ids)
            logit = out[2] * out[0] @ out[1].T
            return float(logit + (out[3] if len(out) > 3 else 0.0))
        inputs = tokenizer.image_processor(images=image, return_tensors="pt")
        if "spatial_shapes" not in inputs:
            inputs = {"pixel_values": px}
        return float(model(input_ids=ids, attention_mask=mask, **inputs).logits_per_image)


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_every_registered_family_has_a_contract_row():
    served = {family_of(build()).name for build, _ in MODEL_FAMILIES.values()}
    assert served == {f.name for f in FAMILIES}


def test_unmasked_value_is_the_models_logit(family):
    _, model, tokenizer, adapter, image = family
    text = adapter.tokenize(CAPTION)
    px = adapter.preprocess_image(image)
    with torch.no_grad():
        v = float(adapter.similarity(adapter.encode_image(px), adapter.encode_text(text))[0, 0])
    assert v == pytest.approx(_model_logit(model, tokenizer, adapter, image, text), abs=2e-5)
    # every player kept is the unmasked model under every masking the tower has
    full = torch.ones(1, adapter.n_image_players, dtype=torch.bool)
    for masking in getattr(adapter, "image_maskings", ("mean", "drop")):
        torch.testing.assert_close(
            adapter.encode_image(px, full, masking), adapter.encode_image(px), atol=2e-6, rtol=0
        )


def test_masked_token_id_has_no_effect_and_batching_does_not_change_values(family):
    _, _, _, adapter, image = family
    text = adapter.tokenize(CAPTION)
    g = torch.Generator().manual_seed(0)
    coal_t = torch.rand(6, text.n_players, generator=g) < 0.5
    coal_t[0, 1] = False
    emb = adapter.encode_text(text, coal_t)
    swapped = text.input_ids.clone()
    pos = int(text.player_positions[1])
    swapped[pos] = text.input_ids[int(text.player_positions[0])]
    other = type(text)(**{**text.__dict__, "input_ids": swapped})
    torch.testing.assert_close(adapter.encode_text(other, coal_t[:1]), emb[:1], atol=1e-6, rtol=0)
    for i in range(coal_t.shape[0]):
        torch.testing.assert_close(adapter.encode_text(text, coal_t[i : i + 1]), emb[i : i + 1])
    px = adapter.preprocess_image(image)
    coal_i = torch.rand(5, adapter.n_image_players, generator=g) < 0.5
    coal_i[0] = False  # no patch kept: defined and finite for every pooling kind
    for masking in getattr(adapter, "image_maskings", ("mean", "drop")):
        emb_i = adapter.encode_image(px, coal_i, masking)
        assert torch.isfinite(emb_i).all(), masking
        for i in range(coal_i.shape[0]):
            torch.testing.assert_close(
                adapter.encode_image(px, coal_i[i : i + 1], masking),
                emb_i[i : i + 1],
                atol=1e-6,
                rtol=1e-5,
            )


def test_baseline_hooks_reproduce_the_model_and_leave_it_untouched(family):
    _, model, tokenizer, adapter, image = family
    try:
        towers = Towers(model, adapter)
    except UnsupportedModelError:
        pytest.skip("family exposes no tower internals")
    text = adapter.tokenize(CAPTION)
    px = adapter.preprocess_image(image)
    ids, mask = text.input_ids[None], text.attention_mask[None]
    before = _state(model)
    with torch.no_grad():
        ref_i, ref_t = towers.encode_image(px), towers.encode_text(ids, mask)
    modules = [*towers.text_attention] if towers._text.attention else []
    if towers.image_blocks is not None and towers._image.attention:
        modules += towers.image_attention
    with towers.eager(), torch.no_grad(), AttentionRecorder(towers, modules):
        rec_i, rec_t = towers.encode_image(px), towers.encode_text(ids, mask)
    torch.testing.assert_close(rec_i, ref_i, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rec_t, ref_t, atol=1e-5, rtol=1e-5)
    if towers.image_blocks is not None:
        ExCLIP(model, tokenizer, adapter=adapter, n_steps=2).attribute_interactions(px, text)
    after = _state(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == 0


def test_train_mode_gives_the_eval_explanation_and_is_restored(family):
    _, model, tokenizer, _, image = family
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    before = _state(model)
    explainer = FIxLIP(model, tokenizer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = explainer.attribute_interactions(
            image, CAPTION, budget=2**10, seed=0, pairs="crossmodal"
        )
        model.train()
        try:
            got = explainer.attribute_interactions(
                image, CAPTION, budget=2**10, seed=0, pairs="crossmodal"
            )
            assert model.training and all(m.training for m in model.modules())
        finally:
            model.eval()
    assert (got.values == ref.values).all()
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    after = _state(model)
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("size", [(96, 48), (40, 88), (64, 64)])
def test_siglip2_follows_the_processors_patch_layout(size):
    build_model, build_processor = MODEL_FAMILIES["hf_siglip2"]
    model, processor = build_model(), build_processor()
    image = random_pil_image(4, width=size[0], height=size[1])
    explainer = FIxLIP(model, processor)
    iv = explainer.attribute_interactions(image, CAPTION, budget=2**9, seed=0, max_order=1)
    text = processor.tokenizer([CAPTION], padding="max_length", max_length=12, return_tensors="pt")
    inputs = {**processor.image_processor(images=image, return_tensors="pt"), **text}
    with torch.no_grad():
        logit = float(model(**inputs).logits_per_image)
    rows, cols = (int(v) for v in inputs["spatial_shapes"][0])
    assert iv.context.grid == (rows, cols) and iv.context.n_image == rows * cols
    assert (rows != cols) == (size[0] != size[1])
    assert iv.context.v_full == pytest.approx(logit, abs=2e-5)


def test_refusals_are_unsupported_model_errors_at_construction():
    from transformers import AlignConfig, AlignModel

    tiny = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    align = AlignModel(AlignConfig(text_config=tiny, vision_config=dict(image_size=32)))
    with pytest.raises(UnsupportedModelError, match=r"(?s)AlignModel.*dual encoder"):
        FIxLIP(align)
    import open_clip

    convnext = open_clip.CustomTextCLIP(
        embed_dim=16,
        vision_cfg=dict(
            image_size=32, timm_model_name="convnext_atto", timm_model_pretrained=False
        ),
        text_cfg=dict(context_length=8, vocab_size=50, width=32, heads=2, layers=1),
    )
    # a convolutional tower is served with pixel-grid players; "drop" is refused
    from _models import siglip_word_tokenizer

    adapter = get_adapter(convnext, siglip_word_tokenizer())
    assert adapter.patch_grid == (1, 1)
    with pytest.raises(ValueError, match="ConvNeXt: it has no patch tokens"):
        adapter.encode_image(torch.zeros(1, 3, 32, 32), torch.ones(1, 1, dtype=torch.bool), "drop")
