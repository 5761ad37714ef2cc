-- Same-family pairs of different types, keyed "A-B" with A <= B, pooled across families.
select
    method,
    metric,
    config_hash,
    least(type_a, type_b) || '-' || greatest(type_a, type_b) as type_pair,
    {{ similarity_stats() }},
    count(distinct family_a) as n_families
from {{ ref('pair_similarities') }}
where category = 'intrafamily' and type_a <> type_b
group by all
