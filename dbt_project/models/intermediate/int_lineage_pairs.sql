-- Every ancestor -> descendant pair reachable through model_edges, with the
-- relation of the first edge on the path (direct edges give the derivation
-- type; longer paths keep it and record their depth).
with recursive walk (ancestor_id, descendant_id, depth, first_relation, path) as (
    select parent_id, child_id, 1, relation, [parent_id, child_id]
    from {{ ref('stg_model_edges') }}
    union all
    select w.ancestor_id, e.child_id, w.depth + 1, w.first_relation, list_append(w.path, e.child_id)
    from walk w
    join {{ ref('stg_model_edges') }} e on e.parent_id = w.descendant_id
    where not list_contains(w.path, e.child_id) and w.depth < 32
)
select
    ancestor_id,
    descendant_id,
    min(depth) as depth,
    -- a direct edge names the derivation; otherwise the pair is a multi-step descendant
    case when min(depth) = 1 then min(first_relation) filter (where depth = 1) else 'multi_step' end as derivation_type
from walk
group by ancestor_id, descendant_id
