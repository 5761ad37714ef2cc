-- Config drift along lineage edges by group, next to two reference points computed the same way
-- (macros/gower.sql): pairs of siblings, and a deterministic sample of random pairs.
with edges as (
    select * from {{ ref('config_drift_edges') }}
),

edge_groups as (
    select 'overall' as group_kind, 'all' as group_value, gower_standard, gower_max from edges
    union all
    select 'relation', relation, gower_standard, gower_max from edges
    union all
    -- an edge belongs to its child's family
    select 'family', child_family, gower_standard, gower_max from edges where child_family is not null
    union all
    select 'within_vs_between', case when same_family then 'within_family' else 'between_family' end,
           gower_standard, gower_max
    from edges where same_family is not null
),

configs as (
    select model_id from {{ ref('stg_model_configs') }}
),

-- children of one parent that have a config; a parent with more than var('drift_sibling_max_children')
-- such children contributes a deterministic (hash-ordered) subset, so huge fan-outs stay quadratic in the cap
children as (
    select e.parent_id, e.child_id,
           row_number() over (partition by e.parent_id order by hash(e.child_id), e.child_id) as child_rank
    from (select distinct parent_id, child_id from {{ ref('stg_model_edges') }}) as e
    where e.child_id in (select model_id from configs)
),

sibling_pairs as (
    select distinct a.child_id as model_a, b.child_id as model_b
    from children as a
    join children as b on b.parent_id = a.parent_id and a.child_id < b.child_id
    where a.child_rank <= {{ var('drift_sibling_max_children', 1000) }}
      and b.child_rank <= {{ var('drift_sibling_max_children', 1000) }}
),

-- random pairs: models with a config and a family, numbered in hash order; draw i picks positions
-- hash(2i) and hash(2i + 1) mod n (hash(i, 'a') and hash(i, 'b') are not independent: their difference
-- is fixed); distinct unordered pairs in order of first draw, first N kept
eligible as (
    select c.model_id, row_number() over (order by hash(c.model_id), c.model_id) - 1 as idx
    from configs as c
    join {{ ref('stg_models') }} as m on m.model_id = c.model_id
    where m.family is not null
),

population as (
    select count(*) as n from eligible
),

draws as (
    select d.i, cast(hash(2 * d.i) % p.n as bigint) as ia, cast(hash(2 * d.i + 1) % p.n as bigint) as ib
    from range(2 * {{ var('drift_random_pairs') }} + 100) as d(i), population as p
    where p.n >= 2
),

random_pairs as (
    select least(a.model_id, b.model_id) as model_a, greatest(a.model_id, b.model_id) as model_b, min(d.i) as first_draw
    from draws as d
    join eligible as a on a.idx = d.ia
    join eligible as b on b.idx = d.ib
    where d.ia <> d.ib
    group by 1, 2
    order by first_draw
    limit {{ var('drift_random_pairs') }}
),

baseline_pairs as (
    select 'siblings' as baseline, model_a, model_b from sibling_pairs
    union all
    select 'random_pairs', model_a, model_b from random_pairs
),

baseline_diffs as (
    {{ config_feature_diffs('baseline_pairs', 'model_a', 'model_b', carry=['baseline', 'model_a', 'model_b']) }}
),

baseline_drift as (
    select p.baseline, p.model_a, p.model_b, d.gower_standard, d.gower_max
    from baseline_pairs as p
    left join (
        select baseline, model_a, model_b, {{ gower_aggregates() }}
        from baseline_diffs
        group by baseline, model_a, model_b
    ) as d on d.baseline = p.baseline and d.model_a = p.model_a and d.model_b = p.model_b
),

all_groups as (
    select group_kind, group_value, gower_standard, gower_max from edge_groups
    union all
    select 'baseline', baseline, gower_standard, gower_max from baseline_drift
)

select group_kind, group_value, {{ drift_stats() }}
from all_groups
group by group_kind, group_value
