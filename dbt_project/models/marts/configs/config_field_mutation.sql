-- How often each architecture feature changes along a lineage edge, per relation and overall,
-- with a Wilson score interval (macros/wilson.sql) on the share.
with edges as (
    select parent_id, child_id, relation from {{ ref('stg_model_edges') }}
),

diffs as (
    {{ config_feature_diffs('edges', 'parent_id', 'child_id', carry=['relation']) }}
),

counts as (
    select feature as field, coalesce(relation, 'all') as relation,
           count(*) as n_edges_compared, count(*) filter (where changed) as n_changed
    from diffs
    group by grouping sets ((feature, relation), (feature))
),

grid as (
    select f.field, r.relation
    from (select unnest({{ config_features() }}) as field) as f
    cross join (select distinct relation from edges union all select 'all') as r
)

select
    g.field,
    g.relation,
    coalesce(c.n_edges_compared, 0) as n_edges_compared,
    coalesce(c.n_changed, 0) as n_changed,
    c.n_changed / c.n_edges_compared as share_changed,
    {{ wilson_bound('c.n_changed', 'c.n_edges_compared', '-') }} as ci_low,
    {{ wilson_bound('c.n_changed', 'c.n_edges_compared', '+') }} as ci_high
from grid as g
left join counts as c on c.field = g.field and c.relation = g.relation
