"""The public-data benchmark of `prognostics`' survival model: repeated stratified k-fold
cross-validation on one cohort, comparing in the same run, on the same folds, against
scikit-survival's CoxPHSurvivalAnalysis (unpenalised, the package's default, which may fail
to converge on wide cohorts; and ridge-penalised with the penalty chosen by an inner 3-fold
cross-validation on each training fold) and RandomSurvivalForest.

`prognostics evaluate --cv RxK --json` chooses the folds (stratified by event, from the seed)
and reports each fold's test rows and risks; this script fits the two peers on each fold's
complement (all of it: the peers need no validation rows, prognostics keeps a fifth of it for
early stopping and calibration) and scores all three models on the fold with the same
functions: scikit-survival's concordance_index_censored (Harrell) and concordance_index_ipcw
(Uno, truncated at 5 years, censoring from the fold's training rows).

Usage: survival_cv.py PROGNOSTICS_BINARY COHORT.arff TIME_COL EVENT_COL SEED [REPEATSxFOLDS
[EVALUATE_OPTION ...]]: options after the folds go to `prognostics evaluate` (an input spec
with `--inputs`, `--feature-dropout` …). Prints one JSON object.
"""

import json
import subprocess
import sys
import time

import numpy as np
import pandas as pd
from sksurv.ensemble import RandomSurvivalForest
from sksurv.io import loadarff
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.metrics import concordance_index_censored, concordance_index_ipcw
from sklearn.model_selection import GridSearchCV, KFold
from sksurv.util import Surv


def design(frame, train_index):
    """One-hot categorical columns (first level dropped), impute numeric with the training
    mean, standardise with the training statistics."""
    categorical = [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]
    x = pd.get_dummies(frame, columns=categorical, drop_first=True, dtype=float)
    train = x.iloc[train_index]
    mean, sd = train.mean(), train.std().replace(0, 1)
    return ((x.fillna(mean) - mean) / sd).to_numpy()


def main():
    binary, cohort, time_col, event_col, seed = sys.argv[1:6]
    cv = sys.argv[6] if len(sys.argv) > 6 else "5x5"
    extra = sys.argv[7:]
    started = time.perf_counter()
    ours = json.loads(
        subprocess.run(
            [binary, "evaluate", "--cohort", cohort, "--time", time_col, "--event", event_col,
             "--cv", cv, "--seed", seed, "--json", "--quiet", *extra],
            check=True, capture_output=True, text=True,
        ).stdout
    )
    ours_seconds = time.perf_counter() - started

    frame = loadarff(cohort)
    event = frame.pop(event_col).astype(str).isin(["1", "1.0", "yes", "true"]).to_numpy()
    t = frame.pop(time_col).astype(float).to_numpy()
    y = Surv.from_arrays(event, t)
    tau = 5 * 365.25 if t.max() > 100 else 5.0

    peers = ["CoxPH", "CoxPH ridge", "RSF"]
    results = {name: [] for name in ["prognostics", *peers]}
    # Per peer: (prognostics, peer) on the folds the peer scored, for a paired comparison.
    paired = {name: [] for name in peers}
    uno = {name: [] for name in ["prognostics", *peers]}
    seconds = {name: 0.0 for name in peers}
    failures = {name: 0 for name in peers}
    for fold in ours["results"]:
        test = np.array(fold["test_rows"])
        train = np.setdiff1d(np.arange(len(t)), test)
        x = design(frame, train)
        risks = {"prognostics": np.array(fold["risk"])}
        for name, model in [
            ("CoxPH", CoxPHSurvivalAnalysis()),
            ("CoxPH ridge", GridSearchCV(
                CoxPHSurvivalAnalysis(),
                {"alpha": [0.01, 0.1, 1.0, 10.0, 100.0]},
                cv=KFold(3, shuffle=True, random_state=int(seed)),
            )),
            ("RSF", RandomSurvivalForest(n_estimators=500, min_samples_split=10,
                                         min_samples_leaf=15, n_jobs=-1,
                                         random_state=int(seed) + fold["repeat"] * 100 + fold["fold"])),
        ]:
            began = time.perf_counter()
            try:
                model.fit(x[train], y[train])
                risks[name] = model.predict(x[test])
            except Exception as error:  # a peer that fails on a fold scores nothing there
                failures[name] += 1
                print(f"{name} failed on fold {fold['repeat']}.{fold['fold']}: {error}", file=sys.stderr)
            seconds[name] += time.perf_counter() - began
        fold_c = {}
        for name, risk in risks.items():
            if not np.all(np.isfinite(risk)):
                continue
            fold_c[name] = concordance_index_censored(event[test], t[test], risk)[0]
            results[name].append(fold_c[name])
            try:
                uno[name].append(concordance_index_ipcw(y[train], y[test], risk, tau=tau)[0])
            except ValueError:
                pass
        for name in peers:
            if name in fold_c:
                paired[name].append((fold_c["prognostics"], fold_c[name]))

    def spread(values):
        values = np.array(values)
        return {"mean": float(values.mean()), "sd": float(values.std(ddof=1)), "folds": len(values)} if len(values) else None

    out = {
        "cohort": cohort.rsplit("/", 1)[-1],
        "rows": int(len(t)),
        "events": int(event.sum()),
        "cv": cv,
        "seed": int(seed),
        "harrell_c": {k: spread(v) for k, v in results.items()},
        "uno_c_5y": {k: spread(v) for k, v in uno.items()},
        "seconds": {"prognostics (train + score, all folds)": ours_seconds, **seconds},
        "peer_failures": failures,
    }
    # prognostics' mean over the folds each peer scored, divided by the peer's.
    out["ratio"] = {
        name: {
            "folds": len(pairs),
            "prognostics": float(np.mean([p[0] for p in pairs])),
            "peer": float(np.mean([p[1] for p in pairs])),
            "ratio": float(np.mean([p[0] for p in pairs]) / np.mean([p[1] for p in pairs])),
            "folds_prognostics_ahead": int(sum(p[0] >= p[1] for p in pairs)),
        }
        for name, pairs in paired.items()
        if pairs
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
