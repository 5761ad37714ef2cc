select
    r.model_id,
    r.corpus,
    r.predictor,
    r.status,
    r.n,
    r.positives,
    r.n_train,
    -- NaN (a metric undefined on a single class) becomes null
    case when not isnan(r.precision) then r.precision end as precision,
    case when not isnan(r.recall) then r.recall end as recall,
    case when not isnan(r.roc_auc) then r.roc_auc end as roc_auc,
    case when not isnan(r.pr_auc) then r.pr_auc end as pr_auc,
    case when not isnan(r.ece) then r.ece end as ece,
    t.lrt_statistic,
    t.lrt_df,
    case when not isnan(t.lrt_p_value) then t.lrt_p_value end as lrt_p_value
from {{ ref('stg_memorization_model_results') }} as r
left join {{ ref('stg_memorization_model_tests') }} as t using (model_id, corpus)
