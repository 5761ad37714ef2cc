select
    model_id,
    corpus,
    count(*) as n_samples,
    -- count_if gives HUGEINT in DuckDB: counts are cast to bigint for the dashboard's clients
    cast(count_if(memorized) as bigint) as n_memorized,
    count_if(memorized) / count(*) as memorization_rate,
    cast(count_if(category = 'recitation') as bigint) as n_recitation,
    cast(count_if(category = 'reconstruction') as bigint) as n_reconstruction,
    cast(count_if(category = 'recollection') as bigint) as n_recollection,
    -- shares of the memorized samples: undefined (null) when none is memorized
    count_if(category = 'recitation') / nullif(count_if(memorized), 0) as share_recitation,
    count_if(category = 'reconstruction') / nullif(count_if(memorized), 0) as share_reconstruction,
    count_if(category = 'recollection') / nullif(count_if(memorized), 0) as share_recollection,
    avg(score) as mean_score
from {{ ref('memorization_taxonomy') }}
group by model_id, corpus
