select
    method,
    metric,
    config_hash,
    least(family_a, family_b) as family_1,
    greatest(family_a, family_b) as family_2,
    least(family_a, family_b) || ' - ' || greatest(family_a, family_b) as family_pair,
    {{ similarity_stats() }}
from {{ ref('pair_similarities') }}
where category = 'interfamily'
group by all
