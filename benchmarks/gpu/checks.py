"""Correctness on the device: families, autocast, solvers, out-of-memory halving.

Every check returns :class:`Check` rows; a check that cannot run here (a CUDA-only check
in ``--smoke`` mode on CPU) is a ``skipped`` row with the reason, never a silent pass.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from benchmarks.gpu.models import SPECS, ModelSpec, build
from fixlip_captum import approximate_crossmodal
from fixlip_captum.adapters import get_adapter
from fixlip_captum.adapters.registry import FAMILIES, family_of
from fixlip_captum.games import CrossModalGame
from fixlip_captum.samplers import bernoulli_coalitions, make_generator

#: fp32 on the device vs fp32 on the CPU: relative error of embeddings and values.
FP32_RTOL = 1e-4
#: Autocast vs fp32 on the same device, similarity in fp32 (random-init real-size towers):
#: relative embedding error ||e - e_32|| / ||e_32|| (worst row) and absolute cosine error.
AUTOCAST_TOL = {
    torch.bfloat16: {"embedding": 5e-2, "cosine": 2e-2},
    torch.float16: {"embedding": 1e-2, "cosine": 5e-3},
}
#: Solver on the device vs on the CPU (float64 least squares): relative coefficient error.
SOLVER_RTOL = 1e-6


@dataclass
class Check:
    """One row of the correctness table."""

    section: str
    name: str
    model: str
    status: str  # "pass", "FAIL", "skipped", "error"
    measured: float | None
    tolerance: float | None
    detail: str = ""


def verdict(measured: float, tolerance: float) -> str:
    return "pass" if measured <= tolerance else "FAIL"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def relative_error(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Worst row of ``||x - ref|| / ||ref||`` (rows of ``[m, D]``; a vector is one row)."""
    x, ref = x.detach().double().cpu(), ref.detach().double().cpu()
    if x.ndim == 1:
        x, ref = x[None], ref[None]
    num = torch.linalg.vector_norm(x - ref, dim=-1)
    den = torch.linalg.vector_norm(ref, dim=-1).clamp_min(1e-12)
    return float((num / den).max())


@dataclass
class ModelState:
    """Device, ``training`` flags and a CPU copy of every parameter and buffer."""

    devices: set[str]
    training: list[bool]
    tensors: dict[str, torch.Tensor]

    @classmethod
    def of(cls, model: torch.nn.Module) -> ModelState:
        return cls(
            {str(p.device) for p in model.parameters()},
            [m.training for m in model.modules()],
            {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        )

    def differences(self, model: torch.nn.Module) -> list[str]:
        """What changed in ``model`` since this snapshot (empty: nothing)."""
        now = ModelState.of(model)
        out = []
        if now.devices != self.devices:
            out.append(f"device {sorted(self.devices)} -> {sorted(now.devices)}")
        if now.training != self.training:
            out.append("training flags changed")
        changed = [k for k, v in self.tensors.items() if not torch.equal(v, now.tensors[k])]
        if changed:
            out.append(f"{len(changed)} tensors changed (e.g. {changed[0]})")
        return out


def fixed_coalitions(
    n_image: int, n_text: int, m_image: int, m_text: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded masks with the full coalition first: ``([m_I, n_I], [m_T, n_T])`` bool (CPU)."""
    gen = make_generator(seed)
    ic = bernoulli_coalitions(m_image, n_image, 0.5, gen)
    tc = bernoulli_coalitions(m_text, n_text, 0.5, gen)
    ic[0], tc[0] = True, True
    return ic, tc


def _encode(game: CrossModalGame, ic: torch.Tensor, masking: str) -> torch.Tensor:
    with torch.inference_mode(), game._autocast():
        pv = game.pixel_values
        return game.adapter.encode_image(pv, ic.to(game.device), masking).float().cpu()


def _on(device: torch.device, model: Any) -> Any:
    return model if device.type == "cpu" else copy.deepcopy(model).to(device)


def family_checks(spec: ModelSpec, device: torch.device, smoke: bool) -> list[Check]:
    """fp32 device == CPU, autocast within tolerance, model unchanged: one model."""
    model, tok, pixels, text = build(spec, smoke)
    rows: list[Check] = []
    served = family_of(model)
    if served is None or served.name != spec.family:
        got = None if served is None else served.name
        return [Check("family", "registry", spec.name, "FAIL", None, None, f"served by {got}")]
    cpu_game = CrossModalGame(get_adapter(model, tok), pixels, text, batch_size=8)
    ic, tc = fixed_coalitions(cpu_game.n_image, cpu_game.n_text, 6, 4)
    dev_model = _on(device, model)
    before = ModelState.of(dev_model)
    dev_adapter = get_adapter(dev_model, tok)
    dev_game = CrossModalGame(dev_adapter, pixels.to(device), text, batch_size=8)
    where = f"{device.type} vs cpu, {cpu_game.n_image}+{cpu_game.n_text} players"
    for masking in ("mean", "drop"):
        try:
            ref = _encode(cpu_game, ic, masking)
        except (ValueError, TypeError) as err:  # a family may refuse drop masking
            rows.append(
                Check(
                    "family",
                    f"fp32 {masking}",
                    spec.name,
                    "skipped",
                    None,
                    None,
                    f"refused on CPU: {err}",
                )
            )
            continue
        err_e = relative_error(_encode(dev_game, ic, masking), ref)
        rows.append(
            Check(
                "family",
                f"fp32 embeddings ({masking})",
                spec.name,
                verdict(err_e, FP32_RTOL),
                err_e,
                FP32_RTOL,
                where,
            )
        )
    v_cpu = cpu_game(ic, tc)
    v_dev = dev_game(ic, tc)
    err_v = relative_error(v_dev.reshape(1, -1), v_cpu.reshape(1, -1))
    rows.append(
        Check(
            "family",
            "fp32 logits (mean)",
            spec.name,
            verdict(err_v, FP32_RTOL),
            err_v,
            FP32_RTOL,
            f"{where}; v(full)={float(v_cpu[0, 0]):.4f}",
        )
    )
    rows.extend(autocast_checks(spec.name, dev_adapter, pixels.to(device), text, ic, tc, device))
    changed = before.differences(dev_model)
    rows.append(
        Check(
            "family",
            "model unchanged",
            spec.name,
            "FAIL" if changed else "pass",
            None,
            None,
            "; ".join(changed) or "device, modes, parameters equal",
        )
    )
    return rows


def autocast_checks(
    name: str,
    adapter: Any,
    pixels: torch.Tensor,
    text: str,
    ic: torch.Tensor,
    tc: torch.Tensor,
    device: torch.device,
) -> list[Check]:
    """Autocast bf16 / fp16 encoders vs fp32 on the same device; similarity stays fp32."""
    rows = []
    ref_game = CrossModalGame(adapter, pixels, text, value="cosine", batch_size=8)
    ref_e, ref_v = _encode(ref_game, ic, "mean"), ref_game(ic, tc)
    for dtype, tol in AUTOCAST_TOL.items():
        label = str(dtype).replace("torch.", "")
        if dtype == torch.float16 and device.type != "cuda":
            rows.append(
                Check(
                    "autocast",
                    f"{label} vs fp32",
                    name,
                    "skipped",
                    None,
                    None,
                    "CUDA only: fp16 autocast is the GPU path, not run on CPU",
                )
            )
            continue
        game = CrossModalGame(
            adapter, pixels, text, value="cosine", batch_size=8, autocast_dtype=dtype
        )
        values = game(ic, tc)
        err_e = relative_error(_encode(game, ic, "mean"), ref_e)
        err_v = float((values.double() - ref_v.double()).abs().max())
        ok = values.dtype == torch.float32
        rows.append(
            Check(
                "autocast",
                f"{label} embeddings",
                name,
                verdict(err_e, tol["embedding"]),
                err_e,
                tol["embedding"],
                f"relative, worst of {ic.shape[0]} masked images, {device.type}",
            )
        )
        status = verdict(err_v, tol["cosine"]) if ok else "FAIL"
        rows.append(
            Check(
                "autocast",
                f"{label} cosine",
                name,
                status,
                err_v,
                tol["cosine"],
                f"absolute; similarity dtype {values.dtype}",
            )
        )
    return rows


# ---------------------------------------------------------------------------------------
# Solvers
# ---------------------------------------------------------------------------------------


def solver_options(
    estimator: Callable[..., Any] = approximate_crossmodal,
) -> tuple[str | None, ...]:
    """HOOK for #15: the solvers ``estimator`` exposes through its public ``solver=`` option.

    ``(None,)`` while it has no such option (main before the iterative solver lands: one
    solver, the direct one, called without the keyword); ``("direct", "iterative")`` once
    it has. Nothing else in the GPU check needs to change when it lands.
    """
    if "solver" not in inspect.signature(estimator).parameters:
        return (None,)
    return ("direct", "iterative")


def solver_kwargs(option: str | None) -> dict[str, Any]:
    return {} if option is None else {"solver": option}


class SyntheticGame:
    """A cross-modal game with known structure: order-2 polynomial plus one 3-way term.

    Values are computed in float64 on the CPU from the masks, so every device gets the very
    same values for the same masks (the estimators draw masks on the CPU, then move them).
    """

    def __init__(self, n_image: int, n_text: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.u = torch.randn(n_image, generator=g, dtype=torch.float64)
        self.s = torch.randn(n_text, generator=g, dtype=torch.float64)
        self.a = torch.randn(n_image, n_image, generator=g, dtype=torch.float64) / n_image
        self.b = torch.randn(n_text, n_text, generator=g, dtype=torch.float64) / n_text
        self.c = torch.randn(n_image, n_text, generator=g, dtype=torch.float64) / n_image

    def __call__(self, ic: torch.Tensor, tc: torch.Tensor) -> torch.Tensor:
        a, b = ic.cpu().double(), tc.cpu().double()
        image = a @ self.u + ((a @ self.a) * a).sum(1)
        text = b @ self.s + ((b @ self.b) * b).sum(1)
        triple = 0.3 * (a[:, 0] * a[:, 1])[:, None] * b[None, :, 0]
        return (image[:, None] + text[None, :] + a @ self.c @ b.T + triple).to(ic.device)


def solver_checks(device: torch.device, smoke: bool) -> list[Check]:
    """Each solver on ``device`` equals the same solver on the CPU (same seed, same masks)."""
    n_i, n_t = (16, 4) if smoke else (49, 9)
    game = SyntheticGame(n_i, n_t)
    f_i = 1 + n_i + n_i * (n_i - 1) // 2
    f_t = 1 + n_t + n_t * (n_t - 1) // 2
    m_i, m_t = 2 * f_i, min(2**n_t, 2 * f_t)
    rows, results = [], {}
    for option in solver_options():
        label = option or "direct (main: no solver option yet)"
        kw = solver_kwargs(option)
        out = {}
        for dev in (torch.device("cpu"), device):
            iv = approximate_crossmodal(
                game, n_i, n_t, m_image=m_i, m_text=m_t, seed=0, device=dev, **kw
            )
            out[dev.type] = (
                torch.as_tensor(iv.values, dtype=torch.float64),
                iv.estimation_info.get("solver", "direct"),
            )
        err = relative_error(out[device.type][0], out["cpu"][0])
        rows.append(
            Check(
                "solver",
                f"{label}: {device.type} vs cpu",
                "synthetic game",
                verdict(err, SOLVER_RTOL),
                err,
                SOLVER_RTOL,
                f"{n_i}+{n_t} players, {m_i}x{m_t} masks, used {out['cpu'][1]}",
            )
        )
        results[option] = out["cpu"][0]
    if "direct" in results and "iterative" in results:
        err = relative_error(results["iterative"], results["direct"])
        rows.append(
            Check(
                "solver",
                "iterative vs direct (cpu)",
                "synthetic game",
                verdict(err, SOLVER_RTOL),
                err,
                SOLVER_RTOL,
                "same masks",
            )
        )
    return rows


# ---------------------------------------------------------------------------------------
# Out-of-memory halving under a real allocation cap
# ---------------------------------------------------------------------------------------

#: The cap above what the model already holds, and the batch that cannot fit under it.
OOM_HEADROOM_GIB = 3.0
OOM_BATCH = 2048


@contextlib.contextmanager
def memory_cap(device: torch.device, headroom_gib: float) -> Iterator[int]:
    """Cap this process's CUDA allocations at what is allocated now plus ``headroom_gib``
    (``torch.cuda.set_per_process_memory_fraction``); yields the cap in bytes and lifts it
    on exit."""
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(device).total_memory
    cap = int(torch.cuda.memory_allocated(device) + headroom_gib * 2**30)
    torch.cuda.set_per_process_memory_fraction(cap / total, device)
    torch.cuda.reset_peak_memory_stats(device)
    try:
        yield cap
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, device)
        torch.cuda.empty_cache()


def oom_checks(device: torch.device, smoke: bool) -> list[Check]:
    """A batch of :data:`OOM_BATCH` masked ViT-B/16 images under a cap of
    :data:`OOM_HEADROOM_GIB` GiB: the game halves its batch until it fits, gives the values
    of an uncapped run, and leaves the model (in ``train()`` mode) as it was."""
    name = "open_clip ViT-B-16"
    if device.type != "cuda":
        return [
            Check(
                "oom",
                "halving under memory fraction",
                name,
                "skipped",
                None,
                None,
                "CUDA only: torch.cuda.set_per_process_memory_fraction needs a GPU",
            )
        ]
    spec = next(s for s in SPECS if s.name == name)
    model, tok, pixels, text = build(spec, smoke)
    model = model.to(device).train()  # the game must restore the mode afterwards
    before = ModelState.of(model)
    adapter = get_adapter(model, tok)
    pixels = pixels.to(device)
    ref_game = CrossModalGame(adapter, pixels, text, batch_size=128)
    ic, tc = fixed_coalitions(ref_game.n_image, ref_game.n_text, OOM_BATCH, 4, seed=1)
    ref = ref_game(ic, tc)
    game = CrossModalGame(adapter, pixels, text, batch_size=OOM_BATCH)
    with memory_cap(device, OOM_HEADROOM_GIB) as cap:
        values = game(ic, tc)
        peak = torch.cuda.max_memory_allocated(device)
    err = relative_error(values.reshape(1, -1), ref.reshape(1, -1))
    halved = game.batch_size < OOM_BATCH
    changed = before.differences(model)
    detail = (
        f"batch {OOM_BATCH} -> {game.batch_size}; peak {peak / 2**30:.2f} GiB under cap "
        f"{cap / 2**30:.2f} GiB"
    )
    return [
        Check(
            "oom",
            "batch halved under the cap",
            name,
            "pass" if halved and peak <= cap else "FAIL",
            float(game.batch_size),
            float(OOM_BATCH),
            detail,
        ),
        Check(
            "oom",
            "values equal uncapped run",
            name,
            verdict(err, FP32_RTOL),
            err,
            FP32_RTOL,
            "relative, all pairs",
        ),
        Check(
            "oom",
            "model unchanged (train mode kept)",
            name,
            "FAIL" if changed else "pass",
            None,
            None,
            "; ".join(changed) or "device, modes, parameters equal",
        ),
    ]


def all_checks(device: torch.device, smoke: bool) -> Iterator[Check]:
    """Every correctness check, family by family, then solvers and out-of-memory halving.

    A check that raises becomes an ``error`` row (the run goes on)."""
    families = {s.family for s in SPECS}
    missing = [f.name for f in FAMILIES if f.name not in families]
    for name in missing:
        yield Check(
            "family",
            "registered family covered",
            name,
            "FAIL",
            None,
            None,
            "no ModelSpec in benchmarks/gpu/models.py",
        )
    # In --smoke mode, entries sharing one tiny model (open_clip B/32 and B/16) run once.
    specs = (
        SPECS if not smoke else list({id(build(s, True)[0]): s for s in SPECS[::-1]}.values())[::-1]
    )
    jobs: list[tuple[str, Callable[[], list[Check]]]] = [
        (s.name, functools.partial(family_checks, s, device, smoke)) for s in specs
    ]
    jobs += [
        ("solvers", lambda: solver_checks(device, smoke)),
        ("oom", lambda: oom_checks(device, smoke)),
    ]
    for name, job in jobs:
        try:
            yield from job()
        except Exception as err:  # reported, not hidden: the table shows it
            yield Check(
                "error",
                "check raised",
                name,
                "error",
                None,
                None,
                f"{type(err).__name__}: {err}"[:300],
            )
