rule predict:
    """Nested cross-validated prediction of the endpoint (MOFA+ refitted in every fold)."""
    input:
        h5mu=f"{R}/{COHORT}.h5mu",
        samples=SAMPLES,
        raw=[f"{R}/ingest/{o}.h5ad" for o in OMICS],
    output:
        metrics=report(
            f"{R}/predict/metrics.tsv",
            caption="../report/predict_metrics.rst",
            category="6. Prediction",
        ),
        folds=f"{R}/predict/metrics_per_fold.tsv",
        per_class=f"{R}/predict/metrics_per_class.tsv",
        predictions=f"{R}/predict/predictions.tsv",
        importance=report(
            f"{R}/predict/importance.tsv",
            caption="../report/predict_importance.rst",
            category="6. Prediction",
        ),
        contributions=f"{R}/predict/contributions.tsv",
        model=f"{R}/predict/final_model.joblib",
        roc=report(
            f"{R}/plots/roc.png",
            caption="../report/roc.rst",
            category="6. Prediction",
        ),
        roc_svg=f"{R}/plots/roc.svg",
        calibration=report(
            f"{R}/plots/calibration.png",
            caption="../report/calibration.rst",
            category="6. Prediction",
        ),
        calibration_svg=f"{R}/plots/calibration.svg",
    log:
        f"{LOGS}/predict/{COHORT}.log",
    benchmark:
        f"{BENCH}/predict/{COHORT}.tsv"
    conda:
        "../../envs/predict.yaml"
    threads: 2
    params:
        endpoint=ENDPOINT,
        predict=config["predict"],
        mofa=config["integrate"],
        omics=config["omics"],
        batch=config["normalize"]["batch"],
        groups=config["groups"],
    script:
        "../scripts/run_predict.py"


rule predict_survival:
    """Cross-validated Cox prediction of survival from the factors (MOFA+ refitted per fold)."""
    input:
        h5mu=f"{R}/{COHORT}.h5mu",
        samples=SAMPLES,
        raw=[f"{R}/ingest/{o}.h5ad" for o in OMICS],
    output:
        metrics=report(
            f"{R}/predict/survival_metrics.tsv",
            caption="../report/survival_metrics.rst",
            category="6. Prediction",
        ),
        predictions=f"{R}/predict/survival_predictions.tsv",
        coefficients=f"{R}/predict/survival_coefficients.tsv",
        km=report(
            f"{R}/plots/survival_risk_groups.png",
            caption="../report/survival_risk_groups.rst",
            category="6. Prediction",
        ),
        km_svg=f"{R}/plots/survival_risk_groups.svg",
    log:
        f"{LOGS}/predict_survival/{COHORT}.log",
    benchmark:
        f"{BENCH}/predict_survival/{COHORT}.tsv"
    priority: 10  # started before predict (see threads below)
    conda:
        "../../envs/predict.yaml"
    # One thread, started before predict: its folds (a Cox model on the factors after each
    # fold's MOFA+ fit) then run beside the one-thread jobs (stability shards, forest
    # importance, clustering) while predict, the longest job, keeps both cores afterwards.
    # Measured on 2 cores: bundled cohort make run 58.7 -> 53.5 s; with two threads the
    # second core mostly idled in its start and end (16.5 CPU-s in 10.3 s of 2 cores).
    threads: 1
    params:
        survival=config.get("survival"),
        predict=config["predict"],
        mofa=config["integrate"],
        omics=config["omics"],
        batch=config["normalize"]["batch"],
        groups=config["groups"],
    script:
        "../scripts/run_predict_survival.py"
