"""Probe: do the inferred environments recover the true ones? EIIL against InvRL's procedure.

Usage::

    python benchmarks/environment_probe.py [--regimes agree disagree item] [--seeds 0 1 2]
                                           [--n-negatives 200] [--no-content] [--json PATH]
                                           [--reference '{"item_l2_ratio": 20.0}']

On :func:`invrec.datasets.make_multimodal_interactions` (its ``interactions`` carry the true
``environment`` of every training row) for each shift regime and seed:

* the reference ERM model is :class:`invrec.baselines.UltraGCNRecommender` with the synthetic
  backbone settings of ``benchmarks/invariance.py`` (``SYNTH_BACKBONE``), fitted on the
  ``user, item`` columns (and the item content unless ``--no-content``);
* EIIL (:mod:`invrec.invariance.eiil`): the per-row IRMv1 scale gradients of that fixed model on
  every training row (encoded with the fitted estimator's ``user_ids_`` / ``item_ids_``), then the
  partition into ``K = 2`` and ``K = 3`` environments that maximises its IRMv1 penalty;
* the taste split (:func:`invrec.invariance.environments.taste_environments`, the start of
  ``EnvironmentInference(init="taste")``) through the true variant dimensions and through the
  whole content, for ``K = 2`` and ``K = 3``;
* InvRL's procedure (:func:`invrec.invariance.infer_environments`, ``feature_mask=None``: the
  whole content) with PaInvRL's synthetic stage budget (3 rounds of 5 epochs) and the backbone's
  training settings, for ``K = 2`` and ``K = 3``.

Next to them, a ceiling: the *Bayes oracle*, which knows the generator's latent variables and labels
each row with the environment under which its item was the most likely draw for its user
(``argmax_e log softmax_j(preference_uj + beta_e x_uj)[i]``, ignoring the without-replacement
draws). Where the oracle's ARI is about 0 no per-row inference can recover the environments.

Printed: ARI and NMI against the true environments (:func:`invrec.diagnostics.environment_recovery`)
per regime, mean and standard deviation over seeds, and the mean scale gradient of each true
environment (what EIIL's sign split can see). The reference fit dominates the run time (seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.special import logsumexp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from invariance import SYNTH_BACKBONE, SYNTH_STAGES  # noqa: E402

from invrec.baselines import UltraGCNRecommender  # noqa: E402
from invrec.datasets import make_multimodal_interactions, spurious_scores  # noqa: E402
from invrec.diagnostics import environment_recovery  # noqa: E402
from invrec.invariance import infer_environments  # noqa: E402
from invrec.invariance.eiil import eiil_partition, scale_gradients  # noqa: E402
from invrec.invariance.environments import taste_environments  # noqa: E402


def encode(estimator, frame):
    """Encoded (users, items) LongTensors of ``frame``'s rows in a fitted estimator's encoding.

    ``user_ids_`` / ``item_ids_`` are in encoding order (first appearance, catalog order), not
    sorted, so the position of an id is found with an index, not ``np.searchsorted``.
    """
    users = pd.Index(estimator.user_ids_).get_indexer(frame["user"].to_numpy())
    items = pd.Index(estimator.item_ids_).get_indexer(frame["item"].to_numpy())
    if (users < 0).any() or (items < 0).any():
        raise ValueError("some rows have ids the estimator was not fitted on.")
    return torch.as_tensor(users), torch.as_tensor(items)


def invrl_labels(users, items, reference, n_envs, seed):
    """InvRL's procedure on the same rows, with the backbone's settings and PaInvRL's budget."""
    module = reference.module_
    generator = torch.Generator().manual_seed(seed)
    labels, _, history = infer_environments(
        users, items, module.n_users, module.n_items, module.features, n_envs=n_envs,
        feature_mask=None, max_rounds=SYNTH_STAGES["environments__max_rounds"],
        epochs=SYNTH_STAGES["environments__epochs"], batch_size=SYNTH_BACKBONE["batch_size"],
        learning_rate=SYNTH_BACKBONE["learning_rate"], n_negatives=SYNTH_BACKBONE["n_negatives"],
        l2_embedding=SYNTH_BACKBONE["l2_embedding"], l2_content=SYNTH_BACKBONE["l2_content"],
        id_dim=SYNTH_BACKBONE["embedding_dim"], content_dim=SYNTH_BACKBONE["content_dim"],
        generator=generator)
    return labels, len(history)


def true_invariant(data, reference):
    """The generator's invariant dimensions (1) in the column order of the reference's content."""
    slices = reference.item_features_.concat()[1]
    flat = np.zeros(sum(s.stop - s.start for s in slices.values()))
    for modality, columns in slices.items():
        flat[columns] = data.invariant_mask[modality]
    return flat


def oracle_labels(data):
    """Bayes-oracle environment of every training row, from the generator's latent variables."""
    p, q = data.user_factors, data.item_factors
    preference = data.preference_strength * (p @ q.T) / np.sqrt(p.shape[1])
    betas = np.asarray(data.environment_strengths[:-1], dtype=float)
    logits = preference[None] + betas[:, None, None] * spurious_scores(data)[None]
    log_p = logits - logsumexp(logits, axis=2, keepdims=True)
    frame = data.interactions
    return log_p[:, frame["user"].to_numpy(), frame["item"].to_numpy()].argmax(axis=0)


def run_one(regime, seed, args):
    data = make_multimodal_interactions(regime=regime, random_state=seed)
    frame = data.interactions
    truth = frame["environment"].to_numpy()
    X = frame[["user", "item"]]
    start = time.perf_counter()
    oracle = oracle_labels(data)
    oracle_time = time.perf_counter() - start
    start = time.perf_counter()
    reference = UltraGCNRecommender(**{**SYNTH_BACKBONE, **args.reference}, random_state=seed,
                                    device="cpu")
    reference.fit(X, item_features=None if args.no_content else data.item_features)
    fit_time = time.perf_counter() - start
    users, items = encode(reference, X)

    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    g = scale_gradients(reference.module_, users, items, n_negatives=args.n_negatives,
                        loss_weights=reference.loss_weights, generator=generator)
    grad_time = time.perf_counter() - start
    records = []
    env_means = [float(g[torch.as_tensor(truth == e)].mean()) for e in np.unique(truth)]
    base = {"regime": regime, "seed": seed, "fit_time": fit_time,
            "g_mean_by_true_env": env_means, "g_positive_share": float((g > 0).float().mean()),
            "reference_iid_ndcg": float(reference.score(data.test)),
            "reference_ood_ndcg": float(reference.score(data.test_ood))}
    scores = environment_recovery(oracle, truth)
    records.append({**base, "method": "Bayes oracle (true latents)", "K": len(np.unique(truth)),
                    "ari": scores["ari"], "nmi": scores["nmi"],
                    "sizes": np.bincount(oracle, minlength=len(np.unique(truth))).tolist(),
                    "time": oracle_time})
    for k in args.k:
        start = time.perf_counter()
        labels, info = eiil_partition(g, k, steps=args.steps, generator=generator)
        scores = environment_recovery(labels.numpy(), truth)
        records.append({**base, "method": "EIIL", "K": k, "ari": scores["ari"], "nmi": scores["nmi"],
                        "sizes": info["sizes"], "time": grad_time + time.perf_counter() - start})
    features = reference.module_.features
    variant = torch.as_tensor(1.0 - true_invariant(data, reference), dtype=features.dtype)
    for view, mask in (("true variant dimensions", variant), ("whole content", None)):
        for k in args.k:
            start = time.perf_counter()
            labels = taste_environments(users, items, reference.module_.n_users, features, k, feature_mask=mask)
            scores = environment_recovery(labels.numpy(), truth)
            records.append({**base, "method": f"taste split ({view})", "K": k, "ari": scores["ari"],
                            "nmi": scores["nmi"], "sizes": torch.bincount(labels, minlength=k).tolist(),
                            "time": time.perf_counter() - start})
    for k in args.k:
        start = time.perf_counter()
        labels, rounds = invrl_labels(users, items, reference, k, seed)
        scores = environment_recovery(labels.numpy(), truth)
        records.append({**base, "method": "InvRL procedure", "K": k, "ari": scores["ari"],
                        "nmi": scores["nmi"], "sizes": torch.bincount(labels, minlength=k).tolist(),
                        "rounds": rounds, "time": time.perf_counter() - start})
    return records


def _mean_std(values):
    values = np.asarray(values, dtype=float)
    return f"{values.mean():+.3f} ± {values.std():.3f}"


def table(records):
    frame = pd.DataFrame(records)
    lines = ["| regime | method | K | ARI | NMI | sizes (seed 0) | time (s) |",
             "|---|---|---|---|---|---|---|"]
    for (regime, method, k), group in frame.groupby(["regime", "method", "K"], sort=False):
        sizes = group.sort_values("seed")["sizes"].iloc[0]
        lines.append(f"| {regime} | {method} | {k} | {_mean_std(group['ari'])} | "
                     f"{_mean_std(group['nmi'])} | {sizes} | {group['time'].mean():.1f} |")
    lines += ["", "| regime | mean scale gradient by true environment (beta order) | share g > 0 | "
              "reference IID / OOD NDCG@20 | reference fit (s) |", "|---|---|---|---|---|"]
    first = frame.drop_duplicates(["regime", "seed"])
    for regime, group in first.groupby("regime", sort=False):
        means = np.mean(np.stack(group["g_mean_by_true_env"].to_list()), axis=0)
        lines.append(f"| {regime} | {', '.join(f'{m:+.4f}' for m in means)} | "
                     f"{group['g_positive_share'].mean():.3f} | "
                     f"{group['reference_iid_ndcg'].mean():.3f} / {group['reference_ood_ndcg'].mean():.3f} | "
                     f"{group['fit_time'].mean():.1f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regimes", nargs="+", default=["agree", "disagree", "item"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--k", nargs="+", type=int, default=[2, 3])
    parser.add_argument("--n-negatives", type=int, default=200,
                        help="negatives per row in the scale gradients (their Monte Carlo noise)")
    parser.add_argument("--steps", type=int, default=2000, help="Adam steps of the EIIL partition")
    parser.add_argument("--no-content", action="store_true",
                        help="fit the reference model without the item content (ids only)")
    parser.add_argument("--reference", type=json.loads, default={},
                        help='JSON of UltraGCNRecommender settings over SYNTH_BACKBONE, e.g. '
                             '\'{"item_l2_ratio": 20.0}\'')
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="also write the records here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    records = []
    start = time.perf_counter()
    for regime in args.regimes:
        for seed in args.seeds:
            records.extend(run_one(regime, seed, args))
            print(f"  {regime} seed {seed} done ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    print(f"Environment recovery against the true environments (mean ± std over seeds "
          f"{args.seeds}; reference {'ids only' if args.no_content else 'ids + content'}"
          f"{', ' + json.dumps(args.reference) if args.reference else ''}, "
          f"{args.n_negatives} negatives per row):\n")
    print(table(records))
    if args.json is not None:
        args.json.write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
