import numpy as np
import pandas as pd
import pytest
from omix import stats
from omix.errors import AnalysisError, ConfigError


@pytest.fixture()
def cohort():
    rng = np.random.default_rng(0)
    n = 120
    ids = [f"S{i:03d}" for i in range(n)]
    f1, f2 = rng.normal(size=n), rng.normal(size=n)
    hazard = 0.002 * np.exp(1.0 * f1)
    t_event, t_cens = rng.exponential(1 / hazard), rng.uniform(100, 1500, n)
    sheet = pd.DataFrame({
        "response": np.where(f1 + rng.normal(0, 0.5, n) > 0, "yes", "no"),
        "age": 60 + 5 * f2 + rng.normal(0, 1, n),
        "site": rng.choice(["a", "b", "c"], n),
        "constant": "x",
        "free_text": [f"note {i}" for i in range(n)],
        "os_time": np.minimum(t_event, t_cens),
        "os_event": (t_event <= t_cens).astype(float),
    }, index=pd.Index(ids, name="sample_id"))
    factors = pd.DataFrame({"Factor1": f1, "Factor2": f2}, index=ids)
    clusters = pd.Series(np.where(f1 > 0, "C1", "C2"), index=ids)
    return factors, clusters, sheet


def test_associations_find_the_planted_links_and_only_test_testable_columns(cohort):
    factors, clusters, sheet = cohort
    spec = stats.SurvivalSpec(time="os_time", event="os_event")
    t = stats.associations(factors, clusters, sheet, spec).set_index(["variable", "clinical"])
    assert t.loc[("Factor1", "response"), "test"] == "kruskal"
    assert t.loc[("Factor1", "response"), "q"] < 1e-10
    assert t.loc[("Factor2", "age"), "test"] == "spearman"
    assert t.loc[("Factor2", "age"), "effect"] > 0.9
    assert t.loc[("Factor1", "survival"), "test"] == "cox"
    assert t.loc[("Factor1", "survival"), "effect"] > 1.5          # hazard ratio per SD
    assert t.loc[("Factor1", "survival"), "q"] < 1e-4
    assert t.loc[("Factor2", "survival"), "q"] > 0.01
    assert t.loc[("cluster", "survival"), "test"] == "logrank"
    assert t.loc[("cluster", "response"), "test"] == "chi2"
    assert t.loc[("Factor2", "site"), "q"] > 0.05
    clinical = set(t.index.get_level_values("clinical"))
    assert not clinical & {"constant", "free_text", "os_time", "os_event"}
    assert (t["q"] >= t["p"] - 1e-15).all()


def test_survival_frame_tcga_style_and_errors():
    sheet = pd.DataFrame({"death": [100, np.nan, 50, np.nan, 30, np.nan, 80],
                          "follow": [np.nan, 400, np.nan, 300, np.nan, 200, np.nan],
                          "vital": [1, 0, 1, 0, 1, 0, 1]})
    s = stats.survival_frame(sheet, stats.SurvivalSpec("death", "vital", "follow"))
    assert list(s["time"]) == [100, 400, 50, 300, 30, 200, 80]
    bad = sheet.assign(death=[100, np.nan, -5, np.nan, 30, np.nan, 80])
    with pytest.raises(ConfigError, match="negative survival time \\(first at sample row 4"):
        stats.survival_frame(bad, stats.SurvivalSpec("death", "vital", "follow"))
    with pytest.raises(ConfigError, match="values other than 0/1"):
        stats.survival_frame(sheet.assign(vital=2), stats.SurvivalSpec("death", "vital"))
    with pytest.raises(AnalysisError, match="too few for survival analysis"):
        stats.survival_frame(sheet.iloc[:3], stats.SurvivalSpec("death", "vital", "follow"))


def test_cbioportal_coded_survival_status_is_read_as_its_code():
    coded = ["1:DECEASED", "0:LIVING", None, "1:DECEASED", "0:LIVING", "1:DECEASED", "0:LIVING"]
    sheet = pd.DataFrame({"months": [10.5, 40, 12, 3, 22, 7, 30],
                          "status": pd.Series(coded, dtype=object)})
    s = stats.survival_frame(sheet, stats.SurvivalSpec("months", "status"))
    assert list(s.index) == [0, 1, 3, 4, 5, 6]
    assert list(s["event"]) == [1, 0, 1, 0, 1, 0] and list(s["time"]) == [10.5, 40, 3, 22, 7, 30]
    dfs = sheet.assign(status=["1:Recurred/Progressed", "0:DiseaseFree"] * 3 + ["0:DiseaseFree"])
    assert list(stats.survival_frame(dfs, stats.SurvivalSpec("months", "status"))["event"]) == \
        [1, 0, 1, 0, 1, 0, 0]
    # coded and uncoded values mixed: not numbers, as before
    mixed = sheet.assign(status=["1:DECEASED", "LIVING"] * 3 + ["0:LIVING"])
    with pytest.raises(ConfigError, match="survival column 'status' holds 7 value\\(s\\) that "
                                          "are not numbers"):
        stats.survival_frame(mixed, stats.SurvivalSpec("months", "status"))


def test_bias_check_warns_on_confounding_only(cohort):
    factors, _, sheet = cohort
    quiet = stats.bias_check(factors, sheet, ["site"], "response").iloc[0]
    assert quiet["warning"] == "" and quiet["factors_associated"] == "none"
    confounded = sheet.assign(batch=np.where(sheet["response"] == "yes", "run1", "run2"))
    row = stats.bias_check(factors, confounded, ["batch"], "response").iloc[0]
    assert "confounded with the outcome" in row["warning"]
    assert row["factors_associated"] == "Factor1" and row["outcome_cramers_v"] > 0.9


def test_associations_follow_the_resolved_kind_of_the_outcome():
    """A stage coded 1-4 is tested as classes (Kruskal-Wallis) unless the config resolved it
    to numbers (Spearman); the kind is decided on the whole sheet, not on the patients that
    have factors."""
    import numpy as np
    import pandas as pd
    from omix import stats as st

    rng = np.random.default_rng(0)
    ids = [f"s{i}" for i in range(60)]
    stage = pd.Series(rng.integers(1, 5, 60), index=ids)
    factors = pd.DataFrame({"Factor1": stage + rng.normal(0, 0.5, 60)}, index=ids)
    sheet = pd.DataFrame({"stage": stage}, index=ids)
    clusters = pd.Series(np.where(stage > 2, "k1", "k2"), index=ids)
    auto = st.associations(factors, clusters, sheet)
    as_numbers = st.associations(factors, clusters, sheet, kinds={"stage": "numbers"})
    pick = lambda t: t[(t["variable"] == "Factor1") & (t["clinical"] == "stage")]  # noqa: E731
    assert pick(auto)["test"].item() == "kruskal"
    assert pick(as_numbers)["test"].item() == "spearman"
    assert pick(as_numbers)["effect"].item() > 0.8
    # factors for 7 patients only: on that subset 4 levels would count as numbers; the whole
    # sheet says classes, so no Spearman test appears
    assert st.column_kind(sheet["stage"].iloc[:7]) == "continuous"
    few = st.associations(factors.iloc[:7], clusters, sheet)
    assert "spearman" not in set(pick(few)["test"])
