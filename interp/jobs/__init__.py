"""Fine-tuning and evaluation jobs: a validated spec, run by a registered backend, recorded in the store.

``spec``: what a job is (`JobSpec`, `EvaluateJobConfig`) and its validation. ``backend``: what a backend
implements and returns. ``local`` / ``ray_backend``: the two backends; ``registry``: them by name.
``command``: the worker's argument vector (and what it needs shipped or seeded first). ``progress``: what a
run folder says (metrics, logs). ``results``: a finished run recorded in the app's store. ``control``:
submit, resume, stop, refresh, wait, view, list, logs.
``worker``: the detached process the local backend starts.
"""
