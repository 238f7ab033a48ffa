"""open_clip towers beyond the ViT: Eva (rotary), convolutional, HF text towers, CoCa.

Every family: the unmasked value is the model's own logit, a masked token's id has no
effect, results do not depend on batching. Per tower: token drop against an independent
key-mask forward (Eva), pixel-grid masking against hand-zeroed pixels (convolutional),
"drop" refused where there are no patch tokens, ``image_grid`` cells of whole patches.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from _models import (
    OPEN_CLIP_FAMILIES,
    TOWER_FAMILIES,
    random_pixels,
)

from fixlip_captum.adapters.open_clip import OpenCLIPAdapter
from fixlip_captum.adapters.pixel_grid import PlayerGrid, check_image_grid, default_pixel_grid

CAPTION = "a red cat on the grass"


def _adapter(family: str, **kwargs) -> OpenCLIPAdapter:
    build, tokenizer = TOWER_FAMILIES[family]
    return OpenCLIPAdapter(build(), tokenizer(), **kwargs)


def _pixels(adapter: OpenCLIPAdapter, seed: int = 0) -> torch.Tensor:
    return random_pixels(seed, size=adapter.image_size[0])


def _coalitions(n: int, m: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    rows = torch.rand(m, n, generator=g) < 0.5
    return torch.cat([rows, torch.zeros(1, n, dtype=torch.bool)])  # and the empty one


@pytest.mark.parametrize("family", list(TOWER_FAMILIES))
def test_unmasked_value_is_the_model_logit(family: str) -> None:
    adapter = _adapter(family)
    model = adapter.model
    x = _pixels(adapter)
    text = adapter.tokenize(CAPTION)
    with torch.no_grad():
        v = adapter.similarity(adapter.encode_image(x), adapter.encode_text(text))
        img = F.normalize(model.encode_image(x), dim=-1)
        txt = F.normalize(model.encode_text(text.input_ids[None]), dim=-1)
        logit = model.logit_scale.exp() * (img @ txt.T)
    assert v.shape == (1, 1)
    torch.testing.assert_close(v, logit.float(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", list(TOWER_FAMILIES))
def test_masked_token_id_has_no_effect_and_batching_does_not_matter(family: str) -> None:
    adapter = _adapter(family)
    text = adapter.tokenize(CAPTION)
    n = text.n_players
    coalitions = _coalitions(n, 5, seed=1)
    with torch.no_grad():
        together = adapter.encode_text(text, coalitions)
        alone = torch.cat([adapter.encode_text(text, c[None]) for c in coalitions])
        torch.testing.assert_close(together, alone, rtol=0, atol=1e-6)
        row = coalitions[0]
        ids = text.input_ids.clone()
        masked = text.player_positions[~row]
        ids[masked] = ids[text.player_positions[row]][0] if row.any() else 5
        changed = dataclasses.replace(text, input_ids=ids)
        torch.testing.assert_close(
            adapter.encode_text(changed, row[None]), together[:1], rtol=0, atol=1e-6
        )
        # the ids do matter when the tokens are kept
        assert (adapter.encode_text(changed) - adapter.encode_text(text)).abs().max() > 1e-4

        x = _pixels(adapter)
        images = _coalitions(adapter.n_image_players, 4, seed=2)
        for masking in adapter.image_maskings:
            together = adapter.encode_image(x, images, masking)
            alone = torch.cat([adapter.encode_image(x, c[None], masking) for c in images])
            torch.testing.assert_close(together, alone, rtol=0, atol=1e-6)
            assert torch.isfinite(together).all()


@pytest.mark.parametrize("family", ["open_clip_eva", "open_clip_pe"])
def test_eva_token_drop_keeps_rotary_positions(family: str) -> None:
    adapter = _adapter(family)
    trunk = adapter.model.visual.trunk
    x = _pixels(adapter, seed=3)
    n = adapter.n_image_players
    coalitions = _coalitions(n, 3, seed=4)[:3]
    with torch.no_grad():
        drop = adapter.encode_image(x, coalitions, "drop")
        full = adapter.encode_image(x, torch.ones(1, n, dtype=torch.bool), "drop")
        torch.testing.assert_close(full, adapter.encode_image(x), rtol=0, atol=1e-6)
        # masked patch content has no effect
        y = x.clone()
        y[:, :, ~adapter._pixel_keep_mask(coalitions[:1])[0, 0].bool()] += 3.0
        torch.testing.assert_close(
            adapter.encode_image(y, coalitions[:1], "drop"), drop[:1], rtol=0, atol=1e-6
        )
        if trunk.attn_pool is None:
            # Independent reference: the trunk's own forward with masked keys removed; the
            # class token it pools then never sees a masked patch.
            keep = torch.cat([torch.ones(3, 1, dtype=torch.bool), coalitions], dim=1)
            mask = torch.zeros(3, 1, n + 1, n + 1).masked_fill(~keep[:, None, None], -torch.inf)
            feats = trunk.forward_features(x.expand(3, -1, -1, -1), attn_mask=mask)
            ref = F.normalize(adapter.model.visual.head(trunk.forward_head(feats)), dim=-1)
            torch.testing.assert_close(drop, ref, rtol=0, atol=1e-5)
        else:
            # a different coalition gives a different embedding: positions are not lost
            assert (drop[0] - drop[1]).abs().max() > 1e-4


def _relpos_reference(
    adapter: OpenCLIPAdapter, x: torch.Tensor, keep: torch.Tensor, packed: bool = False
):
    """Hand-built forward of a timm ``VisionTransformerRelPos`` trunk on the kept patch
    tokens only: attention written out, each block's bias read from its own table (or the
    shared bias) at the kept tokens' grid positions; ``packed``: at the first positions
    instead (the bias of a shorter image, which is wrong and must change the result)."""
    trunk = adapter.model.visual.trunk
    prefix = trunk.num_prefix_tokens
    tokens = trunk.patch_embed(x)[0]  # [n, D]
    patches = torch.nonzero(keep).flatten()
    seq = tokens[patches]
    if prefix:
        seq = torch.cat([trunk.cls_token[0], seq])
    at = torch.arange(patches.numel()) if packed else patches
    positions = torch.cat([torch.arange(prefix), at + prefix])

    def bias_of(rel_pos) -> torch.Tensor:
        if hasattr(rel_pos, "relative_position_bias_table"):  # learned table per offset
            total = keep.numel() + prefix
            index = rel_pos.relative_position_index.view(total, total)
            sub = index[positions][:, positions]
            return rel_pos.relative_position_bias_table[sub].permute(2, 0, 1)
        full = rel_pos.get_bias()[0]
        return torch.stack(
            [torch.stack([full[:, i, j] for j in positions], dim=-1) for i in positions], dim=1
        )

    shared = bias_of(trunk.shared_rel_pos) if trunk.shared_rel_pos is not None else None
    h = seq[None]
    for blk in trunk.blocks:
        a = blk.attn
        bias = shared if a.rel_pos is None else bias_of(a.rel_pos)
        y = blk.norm1(h)
        qkv = a.qkv(y).reshape(1, y.shape[1], 3, a.num_heads, a.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = a.q_norm(qkv[0]), a.k_norm(qkv[1]), qkv[2]
        att = ((q * a.scale) @ k.transpose(-2, -1) + bias).softmax(dim=-1)
        out = a.proj((att @ v).transpose(1, 2).reshape(1, y.shape[1], -1))
        h = h + blk.ls1(out)
        h = h + blk.ls2(blk.mlp(blk.norm2(h)))
    h = trunk.norm(h)
    pooled = h[:, 0] if trunk.global_pool == "token" else h[:, prefix:].mean(dim=1)
    feats = trunk.head(trunk.fc_norm(pooled))
    return F.normalize(adapter.model.visual.head(feats), dim=-1)


@pytest.mark.parametrize("family", ["open_clip_relpos", "open_clip_relpos_shared"])
def test_relpos_token_drop_keeps_relative_positions(family: str) -> None:
    adapter = _adapter(family)
    assert adapter.image_maskings == ("mean", "drop")
    x = _pixels(adapter, seed=5)
    n = adapter.n_image_players
    coalitions = _coalitions(n, 3, seed=6)[:3]
    coalitions[2] = True
    with torch.no_grad():
        drop = adapter.encode_image(x, coalitions, "drop")
        torch.testing.assert_close(drop[2:], adapter.encode_image(x), rtol=0, atol=1e-6)
        for row, keep in enumerate(coalitions):
            ref = _relpos_reference(adapter, x, keep)
            torch.testing.assert_close(drop[row : row + 1], ref, rtol=0, atol=1e-5)
        # the reference itself is the model when every patch is kept ...
        full = _relpos_reference(adapter, x, coalitions[2])
        torch.testing.assert_close(full, adapter.encode_image(x), rtol=0, atol=1e-5)
        # ... and the kept tokens' positions matter: the same tokens at the first positions
        # give another embedding
        assert coalitions[0].any() and not coalitions[0, : int(coalitions[0].sum())].all()
        packed = _relpos_reference(adapter, x, coalitions[0], packed=True)
        assert (packed - drop[:1]).abs().max() > 1e-3
        # masked patch content has no effect; drop is not mean masking
        y = x.clone()
        y[:, :, ~adapter._pixel_keep_mask(coalitions[:1])[0, 0].bool()] += 3.0
        torch.testing.assert_close(
            adapter.encode_image(y, coalitions[:1], "drop"), drop[:1], rtol=0, atol=1e-6
        )
        mean = adapter.encode_image(x, coalitions[:1], "mean")
        assert (mean - drop[:1]).abs().max() > 1e-3


@pytest.mark.parametrize("family", ["open_clip_resnet", "open_clip_convnext"])
def test_pixel_grid_towers_mask_cells_to_the_mean_colour(family: str) -> None:
    adapter = _adapter(family)
    assert adapter.patch_grid == default_pixel_grid(adapter.image_size) == (2, 2)
    assert adapter.image_maskings == ("mean",)
    x = _pixels(adapter, seed=5)
    coalition = torch.tensor([[True, False, False, True]])
    with torch.no_grad():
        by_hand = x.clone()
        by_hand[:, :, :32, 32:] = 0.0  # cell 1: top right
        by_hand[:, :, 32:, :32] = 0.0  # cell 2: bottom left
        expected = F.normalize(adapter.model.encode_image(by_hand), dim=-1)
        torch.testing.assert_close(adapter.encode_image(x, coalition), expected, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"no patch tokens.*masking='mean'"):
        adapter.encode_image(x, coalition, "drop")
    fine = _adapter(family, image_grid=(3, 5))
    assert fine.n_image_players == 15 and fine.patch_grid == (3, 5)
    owner = fine.pixel_player_map()
    assert owner.min() == 0 and owner.max() == 14  # every pixel belongs to a cell
    assert torch.bincount(owner.flatten()).min() >= (64 // 3) * (64 // 5)


def test_vit_image_grid_cells_are_unions_of_patches() -> None:
    build, tokenizer = OPEN_CLIP_FAMILIES["clip"]
    patches = OpenCLIPAdapter(build(), tokenizer())
    cells = OpenCLIPAdapter(build(), tokenizer(), image_grid=(2, 2))
    assert patches.patch_grid == (4, 4) and cells.patch_grid == (2, 2)
    x = random_pixels(6)
    coalition = torch.tensor([[True, False, True, True]])
    # cell 1 = patches (0, 2), (0, 3), (1, 2), (1, 3) of the 4 x 4 grid
    as_patches = torch.ones(1, 16, dtype=torch.bool)
    as_patches[0, [2, 3, 6, 7]] = False
    with torch.no_grad():
        for masking in ("mean", "drop"):
            torch.testing.assert_close(
                cells.encode_image(x, coalition, masking),
                patches.encode_image(x, as_patches, masking),
                rtol=0,
                atol=0,
            )
    assert cells.pixel_player_map()[0, 16].item() == 1 and cells.patch_size == (16, 16)


def test_image_grid_is_checked_where_it_enters() -> None:
    assert check_image_grid((3, 4), (8, 8), "patches") == (3, 4)
    for bad in [(0, 2), (2,), "2x2", (2.5, 2), None]:
        with pytest.raises(ValueError, match="image_grid"):
            check_image_grid(bad, (8, 8), "patches")
    with pytest.raises(ValueError, match="finer than the tower allows"):
        _adapter("open_clip_eva", image_grid=(5, 4))
    grid = PlayerGrid.over_pixels((7, 7), (224, 224))
    assert torch.bincount(grid.pixel_owner.flatten()).tolist() == [32 * 32] * 49


def test_hf_text_tower_players_skip_special_tokens() -> None:
    adapter = _adapter("open_clip_xlm_roberta")
    text = adapter.tokenize("a red cat")
    assert text.input_ids[:5].tolist()[0] == 0 and text.input_ids[4] == 2
    assert text.player_positions.tolist() == [1, 2, 3]
    assert text.labels == ["a", "red", "cat"]
    mt5 = _adapter("open_clip_mt5").tokenize("a red cat")
    assert mt5.player_positions.tolist() == [0, 1, 2]


# the sample of benchmarks/model_coverage.py that CI runs: its check on the tiny families
@pytest.mark.parametrize("family", ["open_clip_eva", "open_clip_resnet"])
def test_coverage_check_verifies_the_tiny_families(family: str) -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.model_coverage import check_adapter, model_logit, random_image

    adapter = _adapter(family, image_grid=(2, 2))
    caption = "a red cat"
    with torch.no_grad():
        logit = model_logit(
            adapter.model, random_image(adapter, 0), adapter.tokenize(caption).input_ids
        )
    row = check_adapter(adapter, caption, logit)
    assert row["verified"], row
    assert row["n_image"] == 4 and row["n_text"] == 3
    assert row["rel_err"] <= 1e-5 and row["id_err"] <= 1e-6


def test_metaclip2_is_served_as_clip() -> None:
    from _models import hf_clip_processor, tiny_hf_metaclip2

    from fixlip_captum.adapters import get_adapter

    model, processor = tiny_hf_metaclip2(), hf_clip_processor()
    adapter = get_adapter(model, processor)
    x = random_pixels(7)
    text = adapter.tokenize("a red cat on the grass")
    with torch.no_grad():
        v = adapter.similarity(adapter.encode_image(x), adapter.encode_text(text))
        out = model(
            pixel_values=x,
            input_ids=text.input_ids[None],
            attention_mask=text.attention_mask[None],
        )
        torch.testing.assert_close(v, out.logits_per_image.float(), rtol=1e-5, atol=1e-6)
        every = torch.ones(1, adapter.n_image_players, dtype=torch.bool)
        torch.testing.assert_close(
            adapter.encode_image(x, every, "drop"), adapter.encode_image(x), rtol=0, atol=1e-6
        )


@pytest.mark.parametrize("name", ["AltCLIP"])
def test_other_transformers_dual_encoders_are_refused_with_the_supported_list(name: str) -> None:
    import transformers

    from fixlip_captum.adapters import UnsupportedModelError, get_adapter

    layers = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    config = getattr(transformers, f"{name}Config")(
        text_config=layers, vision_config={**layers, "image_size": 32, "patch_size": 8}
    )
    model = getattr(transformers, f"{name}Model")(config)
    with pytest.raises(UnsupportedModelError, match=rf"{name}Model.*Supported models") as err:
        get_adapter(model)
    assert "MetaClip2Model" in str(err.value) and "DualEncoder" in str(err.value)


def test_protocol_adapter_checks_the_encoder() -> None:
    from fixlip_captum.adapters.protocol import ProtocolAdapter

    class NoText:
        image_size, image_grid = (8, 8), (2, 2)

        def preprocess(self, image):
            return image

    with pytest.raises(TypeError, match=r"lacks \['tokenize', 'encode_image'"):
        ProtocolAdapter(NoText())


def test_gradient_baselines_work_or_say_what_they_need() -> None:
    from fixlip_captum.adapters import UnsupportedModelError
    from fixlip_captum.methods.exclip import ExCLIP
    from fixlip_captum.methods.grad_eclip import GradECLIP

    eva, bpe = TOWER_FAMILIES["open_clip_eva"]
    image_scores = ExCLIP(eva(), bpe()).attribute(random_pixels(0), "a red cat")
    assert torch.isfinite(torch.as_tensor(image_scores)).all()  # hidden states suffice
    with pytest.raises(NotImplementedError, match="rotary position embeddings"):
        GradECLIP(eva(), bpe()).attribute(random_pixels(0), "a red cat")
    resnet, _ = TOWER_FAMILIES["open_clip_resnet"]
    with pytest.raises(UnsupportedModelError, match="no class token and no attention maps"):
        GradECLIP(resnet(), bpe()).attribute(random_pixels(0, size=64), "a red cat")
    xlmr, words = TOWER_FAMILIES["open_clip_xlm_roberta"]
    with pytest.raises(UnsupportedModelError, match="Hugging Face text towers"):
        ExCLIP(xlmr(), words()).attribute(random_pixels(0), "a red cat")
