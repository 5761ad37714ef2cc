select
    method,
    metric,
    config_hash,
    least(family_a, family_b) as family_1,
    greatest(family_a, family_b) as family_2,
    least(family_a, family_b) || ' - ' || greatest(family_a, family_b) as family_pair,
    min(similarity) as min_similarity,
    max(similarity) as max_similarity,
    avg(similarity) as mean_similarity,
    var_pop(similarity) as variance,
    count(*) as n_pairs
from {{ ref('pair_similarities') }}
where category = 'interfamily'
group by all
