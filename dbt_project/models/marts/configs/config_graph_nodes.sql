-- Connected components of config_similarity_graph per metric x variant, by min-label propagation:
-- every model starts as its own label and repeatedly takes the smallest label among its neighbours
-- (keyed recursion: a model's row is replaced only when its label drops, so the walk ends after
-- about one step per hop of the widest component).
with recursive nodes as (
    select distinct s.metric, v.variant, s.model_id
    from (
        select metric, model_a as model_id from {{ ref('stg_config_similarities') }} where kind = 'neighbor'
        union
        select metric, model_b from {{ ref('stg_config_similarities') }} where kind = 'neighbor'
    ) as s
    cross join (values ('median'), ('threshold')) as v(variant)
),

links as (
    select metric, variant, model_a as src, model_b as dst from {{ ref('config_similarity_graph') }}
    union all
    select metric, variant, model_b, model_a from {{ ref('config_similarity_graph') }}
),

degrees as (
    select metric, variant, src as model_id, count(*) as degree
    from links
    group by 1, 2, 3
),

components (metric, variant, model_id, component_id) using key (metric, variant, model_id) as (
    select metric, variant, model_id, model_id from nodes
    union
    select l.metric, l.variant, l.dst, min(c.component_id)
    from components as c
    join links as l on l.metric = c.metric and l.variant = c.variant and l.src = c.model_id
    join recurring.components as cur on cur.metric = l.metric and cur.variant = l.variant and cur.model_id = l.dst
    group by l.metric, l.variant, l.dst, cur.component_id
    having min(c.component_id) < cur.component_id
)

select
    c.metric,
    c.variant,
    c.model_id,
    coalesce(d.degree, 0) as degree,
    c.component_id,
    count(*) over (partition by c.metric, c.variant, c.component_id) as component_size
from components as c
left join degrees as d on d.metric = c.metric and d.variant = c.variant and d.model_id = c.model_id
