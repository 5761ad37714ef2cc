-- Quartiles per family (intrafamily) and per family pair (interfamily), for box/bar charts.
-- Intrafamily pairs are always stored, so their quartiles are exact. The cross-family pairs of
-- experiments stored at scale are not: their quartiles come from the histogram sketch in
-- similarity_aggregates (error at most one bin width; min, max, mean and counts exact).
with at_scale as (
    select distinct method, metric, config_hash from {{ ref('stg_similarity_aggregates') }}
),
pairs as (
    select p.*
    from {{ ref('pair_similarities') }} p
    left join at_scale s using (method, metric, config_hash)
    where p.category = 'intrafamily' or s.method is null
),
from_pairs as (
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
    from pairs
    group by all
),
from_sketches as (
    select method, metric, config_hash, 'interfamily' as category, group_a || ' - ' || group_b as grouping,
           min_similarity, q1, median, q3, max_similarity, mean_similarity, n_pairs
    from {{ ref('stg_similarity_aggregates') }}
    where grouping = 'family' and group_a < group_b
)
select * from from_pairs
union all
select * from from_sketches
