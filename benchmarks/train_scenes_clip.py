"""Train the shipped scenes-clip model (thin wrapper around ``fixlip_captum.models.train``).

The shipped weights were produced with the command recorded in
``fixlip_captum/models/assets/model_card.json`` ("training" -> "command"); run e.g.::

    python benchmarks/train_scenes_clip.py --out /tmp/scenes-clip --threads 2

and copy ``scenes-clip.pt``, ``scenes-clip.json``, ``scenes-clip-tokenizer.json`` and
``model_card.*`` into ``fixlip_captum/models/assets/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fixlip_captum.models.train import main

if __name__ == "__main__":
    main()
