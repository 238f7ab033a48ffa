"""Run a task over many items, in this process (``local``) or on Ray actors (``ray``).

A task (:class:`BatchTask`) is a small picklable object: ``setup(device)`` loads what it
needs once per worker (a model), ``run(payload)`` turns one item into result rows (catching
its own errors into error rows), and ``failed(payload, message)`` makes the error rows of an
item whose worker died more often than the retries allow. The engine hands each item's rows
to ``on_rows`` in the driver, which writes them (:class:`~fixlip_captum.batch.parts.PartStore`).

The ``ray`` engine starts a local Ray cluster (``ray.init()``) unless ``address`` names one,
or uses the session the caller already started. One actor per worker holds one model; an
actor that dies is restarted and its items are retried (``max_retries``); actors are pinned
to ``gpus_per_worker`` GPUs each when the cluster has GPUs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from tqdm.auto import tqdm

__all__ = ["ENGINES", "BatchTask", "EngineOptions", "run_items"]

ENGINES = ("local", "ray")


class BatchTask(Protocol):
    """What an engine runs; see the module docstring."""

    def setup(self, device: str) -> None: ...

    def run(self, payload: Any) -> list[dict[str, Any]]: ...

    def failed(self, payload: Any, message: str) -> list[dict[str, Any]]: ...


class EngineOptions:
    """How to run: engine, workers and their resources.

    Args:
        engine: ``"local"`` or ``"ray"``.
        workers: Ray actors (``ray`` only).
        gpus_per_worker: GPUs per actor; ``None``: 1 when the Ray cluster has GPUs, else 0.
        cpus_per_worker: CPUs (and torch threads) per actor; ``None``: the local cluster's
            CPUs divided by ``workers``, or 1 on a remote cluster.
        address: Ray cluster address (``None``: start a local cluster, or use the session
            already initialised in this process).
        device: Device of the local engine (default: CUDA when available, else CPU).
        max_retries: Times an item is retried after its Ray worker died.
    """

    def __init__(
        self,
        engine: str = "local",
        workers: int = 1,
        gpus_per_worker: float | None = None,
        cpus_per_worker: float | None = None,
        address: str | None = None,
        device: str | None = None,
        max_retries: int = 3,
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}.")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive int, got {workers!r}.")
        if engine == "local" and workers != 1:
            raise ValueError(
                "The local engine runs one worker in this process; use engine='ray' "
                "(--engine ray) for several workers, or --shard to split over processes."
            )
        for name, value in (("gpus_per_worker", gpus_per_worker), ("cpus", cpus_per_worker)):
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}.")
        if engine == "local" and (address or gpus_per_worker or cpus_per_worker):
            raise ValueError(
                "address, gpus_per_worker and cpus_per_worker apply to engine='ray' only; "
                "the local engine uses device=."
            )
        self.engine = engine
        self.workers = workers
        self.gpus_per_worker = gpus_per_worker
        self.cpus_per_worker = cpus_per_worker
        self.address = address
        self.device = device
        self.max_retries = max_retries


def default_device() -> str:
    """CUDA when available, else CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def run_items(
    n_items: int,
    get_payload: Callable[[int], Any],
    task: BatchTask,
    on_rows: Callable[[list[dict[str, Any]]], None],
    options: EngineOptions,
    *,
    desc: str = "pairs",
    show_progress: bool = True,
) -> None:
    """Run ``task`` on items ``0..n_items-1`` and pass each item's rows to ``on_rows``.

    Args:
        n_items: Number of items.
        get_payload: ``get_payload(k)`` -> the payload of item ``k`` (read when dispatched).
        task: The :class:`BatchTask`.
        on_rows: Called in this process with the rows of each finished item.
        options: The :class:`EngineOptions`.
        desc: Progress-bar label.
        show_progress: Show a tqdm bar.
    """
    bar = tqdm(total=n_items, desc=desc, unit="pair", disable=not show_progress)
    try:
        if options.engine == "local":
            task.setup(options.device or default_device())
            for k in range(n_items):
                on_rows(task.run(get_payload(k)))
                bar.update(1)
        else:
            _run_ray(n_items, get_payload, task, on_rows, options, bar)
    finally:
        bar.close()


class _RayWorker:
    """The body of a Ray actor: one task (one model) per actor."""

    def __init__(self, task: BatchTask, threads: int) -> None:
        import ray
        import torch

        if threads > 0:
            torch.set_num_threads(threads)
        device = "cuda" if ray.get_gpu_ids() else "cpu"
        task.setup(device)
        self.task = task

    def pid(self) -> int:
        return os.getpid()

    def run(self, payload: Any) -> list[dict[str, Any]]:
        return self.task.run(payload)


def _ray_resources(options: EngineOptions, local_cluster: bool) -> tuple[float, float]:
    import ray

    resources = ray.cluster_resources()
    cpus_total = float(resources.get("CPU", 1.0))
    gpus = options.gpus_per_worker
    if gpus is None:
        gpus = 1.0 if resources.get("GPU", 0.0) >= 1 else 0.0
    cpus = options.cpus_per_worker
    if cpus is None:
        cpus = max(1.0, float(int(cpus_total // options.workers))) if local_cluster else 1.0
    if local_cluster and cpus * options.workers > cpus_total:
        raise ValueError(
            f"{options.workers} workers x {cpus:g} CPUs need more than the {cpus_total:g} CPUs "
            "of the local Ray cluster; lower workers or cpus_per_worker."
        )
    if local_cluster and gpus * options.workers > resources.get("GPU", 0.0):
        raise ValueError(
            f"{options.workers} workers x {gpus:g} GPUs need more than the "
            f"{resources.get('GPU', 0.0):g} GPUs of the local Ray cluster."
        )
    return cpus, gpus


def _run_ray(
    n_items: int,
    get_payload: Callable[[int], Any],
    task: BatchTask,
    on_rows: Callable[[list[dict[str, Any]]], None],
    options: EngineOptions,
    bar: Any,
) -> None:
    try:
        import ray
        from ray.exceptions import RayActorError, RayError, RayTaskError
    except ImportError as exc:
        raise ImportError("engine='ray' needs Ray: pip install 'fixlip-captum[ray]'.") from exc
    # Connect (or start a local cluster) unless the caller already did; disconnect at the end
    # only then (shutting down a local cluster, leaving a remote one running).
    connected_here = not ray.is_initialized()
    if connected_here:
        ray.init(address=options.address, include_dashboard=False, log_to_driver=False)
    actors: list[Any] = []
    try:
        cpus, gpus = _ray_resources(options, options.address is None)
        actor_cls = ray.remote(
            num_cpus=cpus,
            num_gpus=gpus,
            max_restarts=-1,
            max_task_retries=options.max_retries,
        )(_RayWorker)
        actors = [actor_cls.remote(task, int(cpus)) for _ in range(options.workers)]
        # A task that cannot set up (bad model spec, missing weights) fails here, once.
        try:
            ray.get([a.pid.remote() for a in actors])
        except RayActorError as exc:
            raise RuntimeError(f"The Ray workers could not start: {exc}") from exc
        _dispatch(n_items, get_payload, task, on_rows, actors, bar, (RayError, RayTaskError))
    finally:
        for actor in actors:
            ray.kill(actor)
        if connected_here:
            ray.shutdown()


def _dispatch(
    n_items: int,
    get_payload: Callable[[int], Any],
    task: BatchTask,
    on_rows: Callable[[list[dict[str, Any]]], None],
    actors: Sequence[Any],
    bar: Any,
    ray_errors: tuple[type[Exception], ...],
) -> None:
    """Keep two items in flight per actor; collect results as they finish."""
    import ray

    next_item = 0
    in_flight: dict[Any, tuple[Any, int, Any]] = {}

    def submit(actor: Any) -> None:
        nonlocal next_item
        if next_item < n_items:
            payload = get_payload(next_item)
            in_flight[actor.run.remote(payload)] = (actor, next_item, payload)
            next_item += 1

    for actor in actors:
        submit(actor)
        submit(actor)
    while in_flight:
        ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=5.0)
        for ref in ready:
            actor, _, payload = in_flight.pop(ref)
            try:
                rows = ray.get(ref)
            except ray_errors as exc:  # the worker died on this item max_retries + 1 times
                rows = task.failed(payload, f"worker failed on this item: {exc}")
            on_rows(rows)
            bar.update(1)
            submit(actor)
        if not ready:
            time.sleep(0.01)
