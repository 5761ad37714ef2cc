select
    method,
    metric,
    config_hash,
    family_a as family,
    {{ similarity_stats() }}
from {{ ref('pair_similarities') }}
where category = 'intrafamily'
group by all
