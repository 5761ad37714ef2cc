select
    method,
    metric,
    config_hash,
    family_a as family,
    min(similarity) as min_similarity,
    max(similarity) as max_similarity,
    avg(similarity) as mean_similarity,
    var_pop(similarity) as variance,
    count(*) as n_pairs
from {{ ref('pair_similarities') }}
where category = 'intrafamily'
group by all
