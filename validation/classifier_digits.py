"""Mixture classifiers on the binarised 8x8 digits: accuracy, inpainting, calibration.

Data: ``bayesmix.data.load_digits()`` (1797 images, a pixel is on when its grey level is >= 8
of 16, i.e. > 7), 30 % held out, stratified, ``random_state=0`` (540 test images, ~125
training images per digit). Nothing below is chosen on the test images: every choice is
made by 5-fold stratified cross-validation on the training part, or fixed in advance.

1. **Accuracy with K chosen by BIC per class** (``MixtureClassifier("bernoulli", "bic")``,
   K = 1..6, ``n_init=10``, ``max_iter=500``). For each Bernoulli ``smoothing`` (pseudo-counts
   of the Beta(1 + s, 1 + s) prior of MAP-EM) in ``SMOOTHINGS``: the cross-validated
   accuracy on the training part of four rules: K fixed (1..6), BIC with every parameter
   counted K times ("bic_plain", the estimators' own ``bic``), and BIC with the columns
   constant within a class counted once ("bic", what ``MixtureClassifier`` does since this
   change). The smoothing of the reported classifier is the one with the best
   cross-validated accuracy of the "bic" rule; its test accuracy is then measured once, and
   over four seeds.
2. **Inpainting**: the lower half (pixels 32..63) of every test image hidden, completed by
   ``MixtureClassifier.impute`` from the visible half; error = Brier score of the completed
   pixels (mean squared difference between the completion, a probability, and the true 0/1
   pixel; the conditional expectation minimises it) and, for reference, their mean absolute
   error. Compared: the BIC class mixtures (digit unknown: every class weighed by
   ``P(c | upper half)``; digit known: ``impute(X, y)``), the class mean image of the true
   digit (which uses the label) and of the digit predicted from the visible half, and one
   component per digit (K = 1, naive Bayes; digit unknown).
3. **Calibration**: ``BayesianMixtureClassifier`` (NUTS, 2 chains x 500 draws per digit,
   Beta(1, 1) priors, the K per digit that BIC chose in part 1) against the EM classifier:
   test accuracy, Brier score (sum over the 10 classes, mean over images), log loss, and a
   10-bin reliability table pooled over all (image, class) probabilities; the class-prior-only
   Brier score as the floor.

Usage::

    uv run python validation/classifier_digits.py          # about 5 minutes on 2 cores

Writes ``validation/results/classifier_digits.csv`` (columns ``part, setting, metric,
value``) and prints the tables.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

from bayesmix.data import load_digits
from bayesmix.em import BernoulliMixtureEM, MixtureClassifier
from bayesmix.families import get_family

RESULTS = Path(__file__).parent / "results"
SMOOTHINGS = (1e-3, 0.1, 0.5, 1.0)
K_MAX = 6
EM = {"n_init": 10, "max_iter": 500}
ROWS: list[dict] = []


def record(part: str, setting: str, metric: str, value) -> None:
    """One row of the results table (``value`` a number, or the K per digit as text)."""
    ROWS.append({"part": part, "setting": setting, "metric": metric, "value": value})


def class_grid(X, y, smoothing, seed=0):
    """Per class and K = 1..K_MAX: the fitted mixture, plain BIC and constant-aware BIC.

    The seeds are those ``MixtureClassifier(random_state=seed)`` gives its classes, so the
    "bic" column chooses what the classifier chooses.
    """
    seeds = np.random.RandomState(seed).randint(np.iinfo(np.int32).max, size=10)
    fam = get_family("bernoulli")
    grid = []
    for c in range(10):
        Xc = X[y == c]
        n, d = Xc.shape
        n_const = int(np.sum(Xc.min(axis=0) == Xc.max(axis=0)))
        row = []
        for k in range(1, K_MAX + 1):
            est = BernoulliMixtureEM(k, smoothing=smoothing, random_state=int(seeds[c]), **EM)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est.fit(Xc)
            plain = est.bic(Xc)
            shared = fam.n_parameters(k, d - n_const, None) + fam.n_parameters(1, n_const, None)
            eff = plain - (fam.n_parameters(k, d, None) - shared) * np.log(n)
            row.append({"est": est, "bic_plain": plain, "bic": eff})
        grid.append(row)
    return grid


def choose(grid, rule):
    """K per digit under a rule: "K=<k>", or the argmin of a BIC column."""
    if rule.startswith("K="):
        return [int(rule[2:])] * len(grid)
    return [1 + int(np.argmin([cand[rule] for cand in row])) for row in grid]


def grid_accuracy(grid, ks, prior, X, y):
    """Accuracy of Bayes' rule with the grid's mixtures of K = ks[c] for digit c."""
    jll = np.log(prior) + np.stack(
        [grid[c][k - 1]["est"].score_samples(X) for c, k in enumerate(ks)], axis=1
    )
    return float(np.mean(jll.argmax(axis=1) == y))


RULES = [f"K={k}" for k in range(1, K_MAX + 1)] + ["bic_plain", "bic"]


def part_accuracy(X_tr, y_tr, X_te, y_te):
    """Part 1; returns the BIC classifier of the CV-chosen smoothing (seed 0) and it."""
    print("\n1. held-out accuracy (5-fold CV on the training part; test once)")
    folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(X_tr, y_tr))
    cv = {}
    for s in SMOOTHINGS:
        scores = {r: [] for r in RULES}
        for tr, va in folds:
            grid = class_grid(X_tr[tr], y_tr[tr], s)
            prior = np.bincount(y_tr[tr], minlength=10) / len(tr)
            for r in RULES:
                scores[r].append(grid_accuracy(grid, choose(grid, r), prior, X_tr[va], y_tr[va]))
        grid = class_grid(X_tr, y_tr, s)
        prior = np.bincount(y_tr, minlength=10) / len(y_tr)
        for r in RULES:
            ks = choose(grid, r)
            test = grid_accuracy(grid, ks, prior, X_te, y_te)
            cv[(s, r)] = float(np.mean(scores[r]))
            record("accuracy", f"smoothing={s:g} {r}", "cv_accuracy", cv[(s, r)])
            record("accuracy", f"smoothing={s:g} {r}", "test_accuracy", test)
            if not r.startswith("K="):
                record("accuracy", f"smoothing={s:g} {r}", "ks", " ".join(map(str, ks)))
        print(
            f"  smoothing {s:g}: "
            + ", ".join(
                f"{r} cv {cv[(s, r)]:.4f} test {grid_accuracy(grid, choose(grid, r), prior, X_te, y_te):.4f}"  # noqa: E501
                for r in RULES
            )
        )
        print(
            f"     K per digit: bic_plain {choose(grid, 'bic_plain')}, bic {choose(grid, 'bic')}"
        )
    best = max(SMOOTHINGS, key=lambda s: cv[(s, "bic")])
    print(f"  smoothing chosen by CV for the BIC classifier: {best:g}")
    record("accuracy", "chosen", "smoothing", best)
    accs = []
    for seed in range(4):
        clf = MixtureClassifier(
            "bernoulli",
            "bic",
            max_components=K_MAX,
            mixture_params={"smoothing": best},
            missing="model",
            random_state=seed,
            **EM,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(X_tr, y_tr)
        accs.append(clf.score(X_te, y_te))
        record(
            "accuracy",
            f"MixtureClassifier bic smoothing={best:g} seed={seed}",
            "test_accuracy",
            accs[-1],
        )
        record(
            "accuracy",
            f"MixtureClassifier bic smoothing={best:g} seed={seed}",
            "ks",
            " ".join(map(str, clf.n_components_)),
        )
        if seed == 0:
            chosen = clf
        print(
            f"  MixtureClassifier(bic, smoothing={best:g}, seed {seed}): K {clf.n_components_}, "
            f"test accuracy {accs[-1]:.4f}"
        )
    print(f"  over 4 seeds: {np.mean(accs):.4f} (min {np.min(accs):.4f}, max {np.max(accs):.4f})")
    return chosen, best


def part_inpainting(chosen, smoothing, X_tr, y_tr, X_te, y_te):
    """Part 2: Brier score and MAE of the completed lower halves."""
    print("\n2. inpainting the hidden lower halves of the test digits")
    holes = X_te.astype(float).copy()
    holes[:, 32:] = np.nan
    truth = X_te[:, 32:]
    one = MixtureClassifier(
        "bernoulli", 1, mixture_params={"smoothing": smoothing}, missing="model", random_state=0
    ).fit(X_tr, y_tr)
    means = np.stack([X_tr[y_tr == c].mean(axis=0) for c in range(10)])
    fills = {
        "mixtures (BIC), digit unknown": chosen.impute(holes),
        "mixtures (BIC), digit known": chosen.impute(holes, y_te),
        "class mean image of the true digit": means[y_te],
        # the same without the label: the digit predicted from the visible half
        "class mean image of the predicted digit": means[chosen.predict(holes)],
        "K = 1 per digit, digit unknown": one.impute(holes),
    }
    for name, filled in fills.items():
        lower = filled[:, 32:]
        brier = float(np.mean((lower - truth) ** 2))
        mae = float(np.mean(np.abs(lower - truth)))
        record("inpainting", name, "brier", brier)
        record("inpainting", name, "mae", mae)
        print(f"  {name:40s} Brier {brier:.4f}   MAE {mae:.4f}")


def reliability(proba, y, bins=10, top=False):
    """(bin, n, mean predicted, observed frequency) in 10 equal-width bins, and the ECE.

    ``top=False``: over all (image, class) pairs (is P(c | x) = p right a share p of the
    time?); ``top=True``: the most probable class of each image (confidence vs accuracy).
    """
    if top:
        p = proba.max(axis=1)
        hit = proba.argmax(axis=1) == y
    else:
        p = proba.ravel()
        hit = (np.arange(proba.shape[1])[None, :] == y[:, None]).ravel()
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        sel = idx == b
        if sel.any():
            rows.append((b, int(sel.sum()), float(p[sel].mean()), float(hit[sel].mean())))
    ece = sum(n * abs(m - f) for _, n, m, f in rows) / p.size
    return rows, ece


def part_calibration(chosen, X_tr, y_tr, X_te, y_te):
    """Part 3: Brier, log loss, ECE and reliability of the EM and Bayesian classifiers."""
    from bayesmix.inference import BayesianMixtureClassifier

    print("\n3. calibration: Bayesian (NUTS) vs EM class probabilities on the test digits")
    t = time.perf_counter()
    bayes = BayesianMixtureClassifier(
        "bernoulli", chosen.n_components_, draws=500, tune=500, chains=2, random_state=0
    ).fit(X_tr, y_tr)
    seconds = time.perf_counter() - t
    print(
        f"  NUTS for 10 digits (K {chosen.n_components_}): {seconds:.0f} s, "
        f"divergences {bayes.n_divergent_.tolist()}"
    )
    record("calibration", "bayes", "fit_seconds", seconds)
    onehot = np.eye(10)[y_te]
    prior = np.tile(chosen.class_prior_, (len(y_te), 1))
    draws = bayes.predict_proba_draws(X_te)
    models = {
        "EM (BIC)": chosen.predict_proba(X_te),
        "Bayes (NUTS)": draws.mean(axis=0),
        "class prior only": prior,
    }
    for name, proba in models.items():
        brier = float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))
        logloss = float(-np.mean(np.log(np.clip(proba[np.arange(len(y_te)), y_te], 1e-300, None))))
        acc = float(np.mean(proba.argmax(axis=1) == y_te))
        rows, ece = reliability(proba, y_te)
        top_rows, top_ece = reliability(proba, y_te, top=True)
        for metric, value in (
            ("brier", brier),
            ("log_loss", logloss),
            ("accuracy", acc),
            ("ece", ece),
            ("ece_top_label", top_ece),
        ):
            record("calibration", name, metric, value)
        print(
            f"  {name:16s} accuracy {acc:.4f}  Brier {brier:.4f}  log loss {logloss:.4f}  "
            f"ECE {ece:.4f}  top-label ECE {top_ece:.4f}"
        )
        if name == "class prior only":
            continue
        for kind, table in (("all classes", rows), ("top label", top_rows)):
            for b, n, m, f in table:
                record("reliability", f"{name}, {kind}, bin {b}", "n", n)
                record("reliability", f"{name}, {kind}, bin {b}", "mean_predicted", m)
                record("reliability", f"{name}, {kind}, bin {b}", "observed_frequency", f)
            print(f"    reliability, {kind}: bin  n      mean predicted  observed")
            for b, n, m, f in table:
                print(f"    {'':{len(kind) + 14}s}{b:<4d} {n:<6d} {m:14.3f}  {f:8.3f}")
    # is the posterior sd of the top probability larger where the classifier is wrong?
    mean = draws.mean(axis=0)
    top = mean.argmax(axis=1)
    sd_top = draws.std(axis=0)[np.arange(len(top)), top]
    wrong = top != y_te
    record("calibration", "Bayes (NUTS)", "sd_top_correct", sd_top[~wrong].mean())
    record("calibration", "Bayes (NUTS)", "sd_top_wrong", sd_top[wrong].mean())
    print(
        f"  posterior sd of the top class probability: {sd_top[~wrong].mean():.3f} where "
        f"right, {sd_top[wrong].mean():.3f} where wrong ({wrong.sum()} images)"
    )


def main() -> None:
    """Run the three parts and write the CSV."""
    t0 = time.perf_counter()
    X, y = load_digits()
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    chosen, smoothing = part_accuracy(X_tr, y_tr, X_te, y_te)
    part_inpainting(chosen, smoothing, X_tr, y_tr, X_te, y_te)
    part_calibration(chosen, X_tr, y_tr, X_te, y_te)
    RESULTS.mkdir(exist_ok=True)
    pd.DataFrame(ROWS).to_csv(RESULTS / "classifier_digits.csv", index=False)
    print(f"\nwrote {RESULTS / 'classifier_digits.csv'} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
