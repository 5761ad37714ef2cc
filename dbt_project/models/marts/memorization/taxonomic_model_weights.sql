select
    model_id,
    corpus,
    predictor,
    feature,
    coefficient,
    -- 1 = the largest weight in magnitude; ties broken by feature name so ranks are distinct
    row_number() over (
        partition by model_id, corpus, predictor order by abs(coefficient) desc nulls last, feature
    ) as abs_rank
from {{ ref('stg_memorization_model_weights') }}
