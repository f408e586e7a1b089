"""Walk checkpoint series and measure massive activations in every decoder block.

The walker (:mod:`~massdyn.tracker.walker`) lists a series' revisions through a source
(:mod:`~massdyn.tracker.sources`: Hub repos, local folders, the revision grammar of
``data/revisions.json``), audits them before downloading (:mod:`~massdyn.tracker.audit`),
measures each checkpoint with hooks that live as long as a ``with`` block
(:mod:`~massdyn.tracker.measure`; layer by layer for models bigger than memory:
:mod:`~massdyn.tracker.streamed`) and records into a crash-safe, resumable results folder
(:mod:`~massdyn.tracker.store`). Suites are walked in shards, here or on Slurm
(:mod:`~massdyn.tracker.suite`, :mod:`~massdyn.tracker.slurm`); live training is tracked by
:mod:`~massdyn.tracker.live`. Settings: :mod:`~massdyn.tracker.config`. This package
imports neither ``fitting`` nor ``predictors``.
"""
