-- Each model's nearest configs per metric, with what the neighbour is to it in the lineage.
with neighbors as (
    select model_a as model_id, model_b as neighbor_id, metric, rank, distance, similarity
    from {{ ref('stg_config_similarities') }}
    where kind = 'neighbor'
),

edges as (
    select distinct parent_id, child_id from {{ ref('stg_model_edges') }}
),

families as (
    select model_id, family from {{ ref('stg_models') }}
),

archs as (
    select model_id, model_type from {{ ref('stg_model_configs') }}
)

select
    n.model_id,
    n.neighbor_id,
    n.metric,
    n.rank,
    n.distance,
    n.similarity,
    mf.family as model_family,
    nf.family as neighbor_family,
    ma.model_type as model_arch,
    na.model_type as neighbor_arch,
    case
        when exists (select 1 from edges as e where e.parent_id = n.neighbor_id and e.child_id = n.model_id) then 'parent'
        when exists (select 1 from edges as e where e.parent_id = n.model_id and e.child_id = n.neighbor_id) then 'child'
        when exists (select 1 from edges as e1 join edges as e2 on e2.parent_id = e1.parent_id
                     where e1.child_id = n.model_id and e2.child_id = n.neighbor_id) then 'sibling'
        when mf.family is null or nf.family is null then null
        when mf.family = nf.family then 'same_family'
        else 'other_family'
    end as relation
from neighbors as n
left join families as mf on mf.model_id = n.model_id
left join families as nf on nf.model_id = n.neighbor_id
left join archs as ma on ma.model_id = n.model_id
left join archs as na on na.model_id = n.neighbor_id
