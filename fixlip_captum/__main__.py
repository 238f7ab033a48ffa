"""``python -m fixlip_captum`` runs the ``fixlip`` command."""

from fixlip_captum.cli import main

raise SystemExit(main())
