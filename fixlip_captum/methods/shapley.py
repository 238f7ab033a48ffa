"""Shapley baselines on the joint game: Shapley values (order 1) and FSII (order 2).

Both evaluate the pair's :class:`~fixlip_captum.games.JointGame` (one coalition over all
patches and tokens per model call) and fit the faithful Shapley surrogate by KernelSHAP-
weighted least squares:

* ``backend="fixlip"`` (default): :func:`fixlip_captum.approximate_interactions` with
  ``index="FSII"`` (``max_order=1`` is KernelSHAP, i.e. Shapley values). The empty and full
  coalitions are enforced exactly; with ``budget >= 2^n`` all coalitions are enumerated and
  the result is exact.
* ``backend="shapiq"``: shapiq's own approximators on the same game, as an independent
  cross-check: ``shapiq.KernelSHAP`` (SV), ``shapiq.RegressionFSII`` (FSII) or
  ``shapiq.KernelSHAPIQ`` (``backend="shapiq_kernelshapiq"``; shapiq's k-SII regression of
  order 2 for :class:`FSII`, its order-1 k-SII = SV for :class:`ShapleyValues`).

Cost per explanation: ``budget`` joint-game evaluations (each a masked image and a masked
caption; distinct masks are encoded once), no backward pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fixlip_captum.interaction_values import FIxLIPInteractionValues, make_interaction_values
from fixlip_captum.methods._base import PairMethod, check_choice

__all__ = ["FSII", "ShapleyValues"]

BACKENDS = ("fixlip", "shapiq", "shapiq_kernelshapiq")


class _ShapleyBase(PairMethod):
    """Shared implementation; see :class:`ShapleyValues` and :class:`FSII`."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer_or_processor: Any = None,
        *,
        adapter: Any = None,
        budget: int = 2**11,
        backend: str = "fixlip",
        seed: int | None = 0,
        batch_size: int = 64,
        device: torch.device | str | None = None,
        value: str = "logit",
        image_masking: str = "mean",
    ) -> None:
        super().__init__(
            model, tokenizer_or_processor, adapter=adapter, value=value, image_masking=image_masking
        )
        if isinstance(budget, bool) or int(budget) < 1:
            raise ValueError(f"budget must be a positive int, got {budget!r}.")
        self.budget = int(budget)
        self.backend = check_choice(backend, BACKENDS, "backend")
        self.seed = seed
        self.batch_size = int(batch_size)
        self.device = device

    def _shapiq_approximator(self, n: int, seed: int | None) -> Any:
        import shapiq

        if self.backend == "shapiq_kernelshapiq":
            return shapiq.KernelSHAPIQ(
                n, max_order=self.max_order, index="k-SII", random_state=seed
            )
        if self.max_order == 1:
            return shapiq.KernelSHAP(n, random_state=seed)
        return shapiq.RegressionFSII(n, max_order=self.max_order, random_state=seed)

    def attribute_interactions(
        self, image: Any, text: Any, *, budget: int | None = None, seed: int | None = None
    ) -> FIxLIPInteractionValues:
        """Explain one pair.

        Args:
            image: PIL image or tensor ``[C, H, W]`` / ``[1, C, H, W]`` (preprocessed).
            text: Caption string or token ids.
            budget: Number of game evaluations (default: the constructor's).
            seed: Sampler seed (default: the constructor's).

        Returns:
            :class:`FIxLIPInteractionValues` of order :attr:`max_order` over all players.
        """
        from fixlip_captum.estimators import approximate_interactions

        budget = self.budget if budget is None else int(budget)
        seed = self.seed if seed is None else seed
        pixel_values, text_in = self.prepare(image, text)
        game = self.make_game(pixel_values, text_in, batch_size=self.batch_size)
        n = game.n_players
        ctx = self.context(pixel_values, text_in, game.v_full, game.v_empty)
        info: dict[str, Any] = {"method": self.name, "backend": self.backend, "seed": seed}
        if self.backend == "fixlip":
            iv = approximate_interactions(
                game,
                n,
                budget,
                index="FSII",
                max_order=self.max_order,
                seed=seed,
                device=self.device,
            )
            terms = list(iv.interaction_lookup)
            stored = iv.values  # shapiq rebuilds .values on every access: read it once
            values = np.array([stored[iv.interaction_lookup[t]] for t in terms])
            info.update(iv.estimation_info)
            estimated, used = iv.estimated, iv.estimation_budget
        else:
            calls = {"evaluations": 0}

            def np_game(coalitions: np.ndarray) -> np.ndarray:
                calls["evaluations"] += int(coalitions.shape[0])
                c = torch.as_tensor(np.asarray(coalitions, dtype=bool))
                return game(c).double().cpu().numpy()

            approx = self._shapiq_approximator(n, seed)
            res = approx.approximate(budget, np_game)
            terms = list(res.interaction_lookup)
            stored = res.values
            values = np.array([stored[res.interaction_lookup[t]] for t in terms])
            info.update(
                approximator=type(approx).__name__,
                shapiq_index=res.index,
                evaluations=calls["evaluations"],
            )
            estimated, used = True, calls["evaluations"]
        info["method"] = self.name
        index = self.index
        if self.backend == "shapiq_kernelshapiq" and self.max_order > 1:
            index = "kSII"  # shapiq's k-SII, named without '-'
        return make_interaction_values(
            values,
            terms,
            n_players=n,
            index=index,
            max_order=self.max_order,
            estimated=estimated,
            estimation_budget=used,
            estimation_info=info,
            context=ctx,
        )


class ShapleyValues(_ShapleyBase):
    """Shapley values of patches and tokens (order 1, index ``"SV"``) on the joint game.

    Args:
        model: Any dual encoder the adapters support.
        tokenizer_or_processor: Tokenizer/processor for the adapter.
        adapter: A ready adapter (optional).
        budget: Joint-game evaluations per explanation (default ``2**11``; the FIxLIP paper
            used ``2**17``).
        backend: ``"fixlip"`` (our estimator), ``"shapiq"`` (``shapiq.KernelSHAP``) or
            ``"shapiq_kernelshapiq"`` (``shapiq.KernelSHAPIQ``, order 1).
        seed: Sampler seed.
        batch_size: Masked images/captions per forward pass.
        device: Where the least squares run (our backend).
        value: ``"logit"`` or ``"cosine"``.
        image_masking: ``"mean"`` or ``"drop"``.

    Cost: ``budget`` joint-game evaluations.
    """

    name = "shapley_values"
    index = "SV"
    max_order = 1


class FSII(_ShapleyBase):
    """Faithful Shapley interaction index of order 2 (index ``"FSII"``) on the joint game.

    Same arguments as :class:`ShapleyValues`; ``backend="shapiq"`` uses
    ``shapiq.RegressionFSII``, ``"shapiq_kernelshapiq"`` shapiq's ``KernelSHAPIQ`` (k-SII).
    The budget must exceed the number of fitted terms ``1 + n + n(n-1)/2``.

    Cost: ``budget`` joint-game evaluations.
    """

    name = "fsii"
    index = "FSII"
    max_order = 2
