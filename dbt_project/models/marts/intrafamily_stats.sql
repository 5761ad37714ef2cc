-- Statistics over all within-family pairs. Experiments stored at scale (rows in
-- similarity_aggregates: fingerprinting/scale) read the exact aggregates accumulated inside
-- the tiled kernel; the others aggregate their stored pairs.
with at_scale as (
    select distinct method, metric, config_hash from {{ ref('stg_similarity_aggregates') }}
),
from_pairs as (
    select
        method,
        metric,
        config_hash,
        family_a as family,
        {{ similarity_stats() }}
    from {{ ref('pair_similarities') }}
    anti join at_scale using (method, metric, config_hash)
    where category = 'intrafamily'
    group by all
),
from_aggregates as (
    select method, metric, config_hash, group_a as family,
           min_similarity, max_similarity, mean_similarity, variance, n_pairs
    from {{ ref('stg_similarity_aggregates') }}
    where grouping = 'family' and group_a = group_b
)
select * from from_pairs
union all
select * from from_aggregates
