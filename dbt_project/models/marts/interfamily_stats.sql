-- Statistics over all cross-family pairs per unordered family pair. Experiments stored at
-- scale read the exact aggregates (fingerprinting/scale: their cross pairs are not stored).
with at_scale as (
    select distinct method, metric, config_hash from {{ ref('stg_similarity_aggregates') }}
),
from_pairs as (
    select
        method,
        metric,
        config_hash,
        least(family_a, family_b) as family_1,
        greatest(family_a, family_b) as family_2,
        least(family_a, family_b) || ' - ' || greatest(family_a, family_b) as family_pair,
        {{ similarity_stats() }}
    from {{ ref('pair_similarities') }}
    anti join at_scale using (method, metric, config_hash)
    where category = 'interfamily'
    group by all
),
from_aggregates as (
    select method, metric, config_hash, group_a as family_1, group_b as family_2,
           group_a || ' - ' || group_b as family_pair,
           min_similarity, max_similarity, mean_similarity, variance, n_pairs
    from {{ ref('stg_similarity_aggregates') }}
    where grouping = 'family' and group_a < group_b
)
select * from from_pairs
union all
select * from from_aggregates
