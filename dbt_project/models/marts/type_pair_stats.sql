-- Same-family pairs of different types, keyed "A-B" with A <= B, pooled across families.
-- Experiments stored at scale read the exact type-pair aggregates (fingerprinting/scale).
with at_scale as (
    select distinct method, metric, config_hash from {{ ref('stg_similarity_aggregates') }}
),
from_pairs as (
    select
        method,
        metric,
        config_hash,
        least(type_a, type_b) || '-' || greatest(type_a, type_b) as type_pair,
        {{ similarity_stats() }},
        count(distinct family_a) as n_families
    from {{ ref('pair_similarities') }}
    anti join at_scale using (method, metric, config_hash)
    where category = 'intrafamily' and type_a <> type_b
    group by all
),
from_aggregates as (
    select method, metric, config_hash, group_a || '-' || group_b as type_pair,
           min_similarity, max_similarity, mean_similarity, variance, n_pairs, n_families
    from {{ ref('stg_similarity_aggregates') }}
    where grouping = 'type'
)
select * from from_pairs
union all
select * from from_aggregates
