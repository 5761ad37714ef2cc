-- The config-similarity graph: undirected links between models whose configs are top-k neighbours,
-- kept when close enough. Two variants: 'median' keeps links no farther than the median neighbour
-- distance of the metric, 'threshold' links within var('config_graph_threshold').
with neighbors as (
    select metric, model_a, model_b, distance
    from {{ ref('stg_config_similarities') }}
    where kind = 'neighbor' and model_a <> model_b
),

medians as (
    select metric, quantile_cont(distance, 0.5) as median_distance
    from neighbors
    group by metric
),

links as (
    -- a link found from both ends is one edge; the metrics are symmetric, min() only guards rounding
    select metric, least(model_a, model_b) as model_a, greatest(model_a, model_b) as model_b,
           min(distance) as distance
    from neighbors
    group by 1, 2, 3
)

select l.model_a, l.model_b, l.metric, 'median' as variant, l.distance
from links as l
join medians as m on m.metric = l.metric
where l.distance <= m.median_distance
union all
select model_a, model_b, metric, 'threshold' as variant, distance
from links
where distance <= {{ var('config_graph_threshold') }}
