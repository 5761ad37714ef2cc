-- Config drift along every lineage edge: Gower distance (both variants) between the parent's and the
-- child's architecture features, and which features changed (macros/gower.sql).
with edges as (
    select parent_id, child_id, relation from {{ ref('stg_model_edges') }}
),

diffs as (
    {{ config_feature_diffs('edges', 'parent_id', 'child_id', carry=['parent_id', 'child_id', 'relation']) }}
),

drift as (
    select parent_id, child_id, relation, {{ gower_aggregates() }}
    from diffs
    group by parent_id, child_id, relation
),

families as (
    select model_id, family from {{ ref('stg_models') }}
),

configs as (
    select model_id from {{ ref('stg_model_configs') }}
)

select
    e.parent_id,
    e.child_id,
    e.relation,
    pf.family as parent_family,
    cf.family as child_family,
    pf.family = cf.family as same_family,
    dep.depth,
    pc.model_id is not null as has_parent_config,
    cc.model_id is not null as has_child_config,
    d.gower_standard,
    d.gower_max,
    coalesce(d.n_compared, 0) as n_compared,
    -- unknown (null) unless both configs exist; [] when they agree on every compared feature
    case when pc.model_id is not null and cc.model_id is not null
         then coalesce(d.changed_fields, []::varchar[]) end as changed_fields,
    case when pc.model_id is not null and cc.model_id is not null
         then len(coalesce(d.changed_fields, []::varchar[])) end as n_changed
from edges as e
left join drift as d on d.parent_id = e.parent_id and d.child_id = e.child_id and d.relation = e.relation
left join families as pf on pf.model_id = e.parent_id
left join families as cf on cf.model_id = e.child_id
left join {{ ref('int_model_depths') }} as dep on dep.model_id = e.child_id
left join configs as pc on pc.model_id = e.parent_id
left join configs as cc on cc.model_id = e.child_id
