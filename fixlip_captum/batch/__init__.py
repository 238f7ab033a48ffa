"""Explain a whole dataset: resumable batch runs in this process or on a Ray cluster.

* :func:`explain_dataset` — every pair of a manifest, imagefolder or ``datasets.Dataset``
  into a Parquet dataset, in atomic parts, resumable, ``local`` or ``ray`` engine, shards;
* :func:`load_results` — the results folder back as ``FIxLIPInteractionValues`` per id
  and the table;
* :func:`pair_seed` — the sampler seed of a pair, from the run's seed and the pair's id.

The engine is generic (:func:`~fixlip_captum.batch.runner.run_to_store` runs any
:class:`~fixlip_captum.batch.engines.BatchTask`); ``benchmarks/faithfulness.py`` runs on it.
"""

from fixlip_captum.batch.explain import FIxLIPTask, explain_dataset
from fixlip_captum.batch.records import SCHEMA, pair_seed
from fixlip_captum.batch.results import DatasetResults, load_results
from fixlip_captum.batch.runner import RunSummary

__all__ = [
    "SCHEMA",
    "DatasetResults",
    "FIxLIPTask",
    "RunSummary",
    "explain_dataset",
    "load_results",
    "pair_seed",
]
