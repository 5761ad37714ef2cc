-- Quartiles per family (intrafamily) and per family pair (interfamily), for box/bar charts.
select
    method,
    metric,
    config_hash,
    category,
    case when category = 'intrafamily' then family_a
         else least(family_a, family_b) || ' - ' || greatest(family_a, family_b) end as grouping,
    min(similarity) as min_similarity,
    quantile_cont(similarity, 0.25) as q1,
    quantile_cont(similarity, 0.5) as median,
    quantile_cont(similarity, 0.75) as q3,
    max(similarity) as max_similarity,
    avg(similarity) as mean_similarity,
    count(*) as n_pairs
from {{ ref('pair_similarities') }}
group by all
