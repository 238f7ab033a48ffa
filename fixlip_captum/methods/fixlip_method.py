"""FIxLIP itself behind the baselines' interface, so "all methods" includes it."""

from __future__ import annotations

from typing import Any, cast

import torch

from fixlip_captum.interaction_values import FIxLIPInteractionValues
from fixlip_captum.methods._base import first_order_maps

__all__ = ["FIxLIPMethod"]


class FIxLIPMethod:
    """:class:`fixlip_captum.attr.fixlip.FIxLIP` with its call settings fixed up front.

    Args:
        model: The dual encoder.
        tokenizer_or_processor: Its tokenizer/processor.
        image_masking: ``"mean"`` or ``"drop"``.
        value: ``"logit"`` or ``"cosine"``.
        **call_kwargs: Defaults for ``FIxLIP.attribute_interactions`` (``p``, ``budget``,
            ``mode``, ``max_order``, ``seed``, ...).

    Cost: ``budget`` image-text mask pairs from ``m_I`` masked images and ``m_T`` masked
    captions (``mode="banzhaf"``), or ``budget`` joint evaluations (``mode="shapley"``).
    """

    name = "fixlip"
    index = "FWBII"
    max_order = 2

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer_or_processor: Any = None,
        *,
        image_masking: str = "mean",
        value: str = "logit",
        **call_kwargs: Any,
    ) -> None:
        from fixlip_captum.attr.fixlip import FIxLIP

        self.explainer = FIxLIP(
            model, tokenizer_or_processor, image_masking=image_masking, value=value
        )
        self.adapter = self.explainer.adapter
        self.call_kwargs = call_kwargs

    def attribute_interactions(
        self, image: Any, text: Any, **kwargs: Any
    ) -> FIxLIPInteractionValues:
        """``FIxLIP.attribute_interactions(image, text, **{**call_kwargs, **kwargs})``, i.e.
        :func:`fixlip_captum.attr.pair.explain_pair` after FIxLIP's checks of the settings.

        Raises:
            ValueError: The inputs hold several pairs (a list, or a batch tensor); raised
                before any work.
        """
        from fixlip_captum.attr.pair import split_pairs

        jobs = split_pairs(image, text)
        if jobs is not None:
            raise ValueError(
                f"FIxLIPMethod explains one image-text pair, but the inputs hold {len(jobs)} "
                "pairs; call it once per pair, or use FIxLIP.attribute_interactions for lists."
            )
        # One pair in (checked above), one explanation out.
        return cast(
            FIxLIPInteractionValues,
            self.explainer.attribute_interactions(image, text, **{**self.call_kwargs, **kwargs}),
        )

    def attribute(self, image: Any, text: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """First-order view ``(image [rows, cols], text [n_T])`` of the explanation
        (``phi_i = e_i + p * sum_j e_ij``)."""
        return first_order_maps(self.attribute_interactions(image, text, **kwargs))
