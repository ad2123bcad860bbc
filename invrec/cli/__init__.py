"""The command line, ``invrec`` (or ``python -m invrec``): the main job and the library's tasks.

Commands:

- ``demo`` (the default): fits popularity, the ERM baseline (UltraGCN) and the invariant methods
  (PaInvRL, EIOR, MILK) at their defaults on the embedded synthetic shift problem and prints
  their in- and out-of-distribution NDCG and recall next to the two ground-truth oracles, with
  each invariant method's out-of-distribution ratio to the ERM baseline and to popularity.
- ``evaluate``: fits a model on a dataset folder (MMRec or DiffMM layout) with its official split
  and prints its test metrics.
- ``fit``: fits a model and saves it with :func:`invrec.save`, a format that runs no code when read.
- ``recommend``: top-n lists for given users from a saved model, as CSV.

Files the commands write go to an output folder, ``--out`` (default ``invrec-output``); a relative
file name is taken inside it, an absolute path as given. A model file is read with
:func:`invrec.load`; a joblib or pickle file needs ``recommend --trusted``, because unpickling runs
code from the file.
"""
