"""The machinery every long job shares, pre-training and transfer alike: the run folder's lock,
rolling atomic checkpoints, stop signals, the deterministic sample stream and its loader, the
recipe guard of a resume, a run folder's write faults in one line, and a quiet Lightning fit.

Nothing here knows what is trained: ``train/`` (pre-training), ``segment/`` and ``evaluate/``
build on it, and it imports none of them.
"""
