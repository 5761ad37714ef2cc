-- Depth of every model below a lineage root (a parent that is nobody's child): breadth-first over
-- model_edges, keyed by model so each model keeps its first (= shortest) depth. A model already reached
-- is never expanded again, so cycles end; models reachable only through a cycle have no root and no row
-- (as fingerprinting/configs/drift.py edge_depths). var('lineage_max_depth') bounds runaway chains.
with recursive edges as (
    select distinct parent_id, child_id from {{ ref('stg_model_edges') }}
),

roots as (
    select distinct parent_id as model_id
    from edges
    where parent_id not in (select child_id from edges)
),

walk (model_id, depth) using key (model_id) as (
    select model_id, 0 from roots
    union
    select e.child_id, min(w.depth) + 1
    from walk as w
    join edges as e on e.parent_id = w.model_id
    where w.depth < {{ var('lineage_max_depth') }}
      and e.child_id not in (select model_id from recurring.walk)
    group by e.child_id
)

select model_id, cast(depth as integer) as depth from walk
