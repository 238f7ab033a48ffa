"""captum's first-order attribution methods on FIxLIP's players.

Perturbation methods (``KernelShap``, ``ShapleyValueSampling``, ``FeatureAblation``,
``Lime``) run on the pair's :class:`~fixlip_captum.games.JointGame`: the input is a binary
player vector ``[1, n]`` (all ones = every patch and token kept) with baseline zeros
(= masked), and the forward function hands each perturbed vector to the game, so the adapter
does the masking exactly as for FIxLIP. Attributions are one value per player.

:class:`IntegratedGradientsMethod` is gradient-based: captum's ``IntegratedGradients`` on the
normalised pixels and the token embeddings together, summed per player (over the pixels and
channels of each patch, and over the embedding of each caption token).

Every random draw is made under ``torch.random.fork_rng`` with the given seed, so results are
deterministic and the global RNG is left as it was.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from fixlip_captum.interaction_values import FIxLIPInteractionValues
from fixlip_captum.methods._base import PairMethod
from fixlip_captum.methods._towers import Towers

__all__ = [
    "FeatureAblationMethod",
    "IntegratedGradientsMethod",
    "KernelShapMethod",
    "LimeMethod",
    "ShapleyValueSamplingMethod",
]


class _CaptumGameMethod(PairMethod):
    """A captum perturbation method on the binary player vector of the joint game.

    Args:
        model: Any dual encoder the adapters support.
        tokenizer_or_processor: Tokenizer/processor for the adapter.
        adapter: A ready adapter (optional).
        n_samples: captum's ``n_samples`` (ignored by FeatureAblation).
        perturbations_per_eval: Perturbed player vectors per game call.
        seed: Seed of captum's sampling (``torch.manual_seed`` inside ``fork_rng``).
        batch_size: Masked images/captions per forward pass of the game.
        value: ``"logit"`` or ``"cosine"``.
        image_masking: ``"mean"`` or ``"drop"``.
    """

    captum_name: ClassVar[str] = ""
    default_samples: ClassVar[int | None] = None
    #: Whether the intercept is v(empty) (efficient methods: values sum to v(full) - v(empty)).
    efficient: ClassVar[bool] = False

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer_or_processor: Any = None,
        *,
        adapter: Any = None,
        n_samples: int | None = None,
        perturbations_per_eval: int = 64,
        seed: int = 0,
        batch_size: int = 64,
        value: str = "logit",
        image_masking: str = "mean",
    ) -> None:
        super().__init__(
            model, tokenizer_or_processor, adapter=adapter, value=value, image_masking=image_masking
        )
        self.n_samples = self.default_samples if n_samples is None else int(n_samples)
        if self.n_samples is not None and self.n_samples < 1:
            raise ValueError(f"n_samples must be positive, got {n_samples!r}.")
        self.perturbations_per_eval = int(perturbations_per_eval)
        self.seed = int(seed)
        self.batch_size = int(batch_size)

    def _algorithm(self, forward: Any) -> Any:
        import captum.attr

        return getattr(captum.attr, self.captum_name)(forward)

    def _attribute_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"perturbations_per_eval": self.perturbations_per_eval}
        if self.n_samples is not None:
            kw["n_samples"] = self.n_samples
        return kw

    def attribute_interactions(
        self, image: Any, text: Any, *, seed: int | None = None
    ) -> FIxLIPInteractionValues:
        """Explain one pair.

        Args:
            image: PIL image or tensor ``[C, H, W]`` / ``[1, C, H, W]`` (preprocessed).
            text: Caption string or token ids.
            seed: Sampling seed (default: the constructor's).

        Returns:
            Order-1 values, one per player.
        """
        seed = self.seed if seed is None else int(seed)
        pixel_values, text_in = self.prepare(image, text)
        game = self.make_game(pixel_values, text_in, batch_size=self.batch_size)
        n = game.n_players
        calls = {"evaluations": 0}

        def forward(players: torch.Tensor) -> torch.Tensor:
            calls["evaluations"] += int(players.shape[0])
            return game(players > 0.5).to(players.device)

        inputs = torch.ones(1, n)
        baselines = torch.zeros(1, n)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            attr = self._algorithm(forward).attribute(
                inputs, baselines=baselines, **self._attribute_kwargs()
            )
        phi = attr.detach().reshape(-1).double()
        ctx = self.context(pixel_values, text_in, game.v_full, game.v_empty)
        info = {
            "captum": self.captum_name,
            "n_samples": self.n_samples,
            "seed": seed,
            "evaluations": calls["evaluations"],
        }
        return self.first_order_result(
            phi[: self.n_image],
            phi[self.n_image :],
            ctx,
            info,
            intercept=game.v_empty if self.efficient else 0.0,
            budget=calls["evaluations"],
        )


class KernelShapMethod(_CaptumGameMethod):
    """captum ``KernelShap`` on the joint game (index ``"KernelShap"``).

    Cost: ``n_samples`` game evaluations (default 1024), no backward pass.
    """

    name = "kernel_shap"
    index = "KernelShap"
    captum_name = "KernelShap"
    default_samples = 1024
    efficient = True


class ShapleyValueSamplingMethod(_CaptumGameMethod):
    """captum ``ShapleyValueSampling`` (permutation sampling) on the joint game.

    Cost: ``n_samples * (n + 1)`` game evaluations (``n_samples`` permutations, default 16;
    ``n`` players), no backward pass.
    """

    name = "shapley_value_sampling"
    index = "ShapleyValueSampling"
    captum_name = "ShapleyValueSampling"
    default_samples = 16
    efficient = True


class FeatureAblationMethod(_CaptumGameMethod):
    """captum ``FeatureAblation`` on the joint game: ``v(N) - v(N \\ {i})`` per player.

    Cost: ``n + 1`` game evaluations, no backward pass.
    """

    name = "feature_ablation"
    index = "FeatureAblation"
    captum_name = "FeatureAblation"
    default_samples = None


class LimeMethod(_CaptumGameMethod):
    """captum ``Lime`` on the joint game (captum's defaults: uniform binary perturbations,
    exponential cosine kernel, Lasso with ``alpha=0.01`` as the surrogate).

    Cost: ``n_samples`` game evaluations (default 1024), no backward pass.
    """

    name = "lime"
    index = "Lime"
    captum_name = "Lime"
    default_samples = 1024


class IntegratedGradientsMethod(PairMethod):
    """captum ``IntegratedGradients`` on pixels and token embeddings, summed per player.

    The explained function is the pair's value (``"logit"``: ``exp(logit_scale) * cos
    (+ bias)``; or ``"cosine"``) as a function of the normalised pixels ``[1, C, H, W]`` and
    the text tower's token embeddings ``[1, L, E]`` (injected by a forward hook on the token
    embedding layer). Baselines: zero pixels (the mean colour, as the ``"mean"`` masking) and
    zero embeddings at the caption's tokens, the real embeddings at start/end/padding (so the
    special tokens receive nothing). A patch's value is the sum of its pixels' attributions
    over channels; a token's value the sum over its embedding. By completeness the values sum
    to ``F(input) - F(baseline)`` up to integration error (``estimation_info``:
    ``convergence_delta``); the intercept is ``F(baseline)``.

    Args:
        model: open_clip ``CLIP``/``CustomTextCLIP`` or transformers ``CLIPModel``/
            ``SiglipModel``/``Siglip2Model``.
        tokenizer_or_processor: Tokenizer/processor for the adapter.
        adapter: A ready adapter (optional).
        n_steps: Integration steps (default 50).
        method: captum's integration rule (default ``"gausslegendre"``).
        internal_batch_size: Path points per forward/backward pass (``None`` = all).
        value: ``"logit"`` or ``"cosine"``.
        image_masking: Image masking used for v(empty) in the context.

    Cost: ``n_steps`` forward and backward passes of both towers (batched by
    ``internal_batch_size``), plus 2 for the convergence delta.
    """

    name = "integrated_gradients"
    index = "IntegratedGradients"
    max_order = 1

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer_or_processor: Any = None,
        *,
        adapter: Any = None,
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
        value: str = "logit",
        image_masking: str = "mean",
    ) -> None:
        super().__init__(
            model, tokenizer_or_processor, adapter=adapter, value=value, image_masking=image_masking
        )
        self.towers = Towers(model, self.adapter)
        self.n_steps = int(n_steps)
        self.method = method
        self.internal_batch_size = internal_batch_size

    def attribute_interactions(self, image: Any, text: Any) -> FIxLIPInteractionValues:
        """Explain one pair.

        Args:
            image: PIL image or tensor ``[C, H, W]`` / ``[1, C, H, W]`` (preprocessed).
            text: Caption string or token ids.

        Returns:
            Order-1 values, one per player; intercept ``F(baseline)``.
        """
        from captum.attr import IntegratedGradients

        towers = self.towers
        pixel_values, text_in = self.prepare(image, text)
        device = pixel_values.device
        ids = text_in.input_ids.to(device)[None]
        mask = text_in.attention_mask.to(device)[None]
        players = text_in.player_positions.to(device)
        with torch.no_grad():
            emb = towers.token_embedding(ids).detach()
        base_emb = emb.clone()
        base_emb[:, players] = 0.0
        base_px = torch.zeros_like(pixel_values)

        def forward(px: torch.Tensor, tok: torch.Tensor) -> torch.Tensor:
            k = px.shape[0]
            handle = towers.token_embedding.register_forward_hook(lambda m, a, o: tok.to(o.dtype))
            try:
                f_t = towers.encode_text(ids.expand(k, -1), mask.expand(k, -1))
            finally:
                handle.remove()
            f_i = towers.encode_image(px)
            y = (F.normalize(f_i.float(), dim=-1) * F.normalize(f_t.float(), dim=-1)).sum(-1)
            if self.value == "logit":
                scale, bias = towers.logit_scale_bias()
                y = scale.float() * y + (0.0 if bias is None else bias.float())
            return y

        with torch.enable_grad(), towers.eager():
            ig = IntegratedGradients(forward)
            (a_px, a_tok), delta = ig.attribute(
                (pixel_values, emb),
                baselines=(base_px, base_emb),
                n_steps=self.n_steps,
                method=self.method,
                internal_batch_size=self.internal_batch_size,
                return_convergence_delta=True,
            )
            with torch.no_grad():
                f_base = float(forward(base_px, base_emb)[0])
        owner = self.patch_of_pixel().to(device).reshape(-1)
        per_pixel = a_px[0].sum(0).reshape(-1).double()
        keep = owner >= 0
        img = torch.zeros(self.n_image, dtype=torch.float64, device=device)
        img.index_add_(0, owner[keep], per_pixel[keep])
        txt = a_tok[0, players].sum(-1).double()
        v_full, v_empty = self.pair_values(pixel_values, text_in)
        info = {
            "n_steps": self.n_steps,
            "integration": self.method,
            "convergence_delta": float(delta.reshape(-1)[0]),
            "baseline_value": f_base,
        }
        return self.first_order_result(
            img,
            txt,
            self.context(pixel_values, text_in, v_full, v_empty),
            info,
            intercept=f_base,
            estimated=True,
        )
