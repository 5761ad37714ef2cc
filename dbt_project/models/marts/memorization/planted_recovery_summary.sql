select
    model_id,
    corpus,
    kind,
    planted_count,
    count(*) as n,
    count_if(memorized) / count(*) as memorized_share,
    avg(score) as mean_score,
    avg(duplicates) as mean_duplicates
from {{ ref('planted_recovery') }}
group by model_id, corpus, kind, planted_count
