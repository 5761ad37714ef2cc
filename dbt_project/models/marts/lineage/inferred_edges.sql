-- Every inferred edge of the latest lineage run, checked against the recorded lineage, plus every
-- recorded edge the run missed. The population is the run's scored models: those with similarities
-- of the run's method and metric (source 'method:metric'), or with any similarity (source 'verdict');
-- recorded edges outside it (e.g. the Hub lineage sample, never fingerprinted) are left out.
with inferred as (
    select * from {{ ref('stg_inferred_edges') }}
),
run as (
    select distinct
        source,
        case when contains(source, ':') then split_part(source, ':', 1) end as method,
        case when contains(source, ':') then split_part(source, ':', 2) end as metric
    from inferred
),
scored as (
    select s.model_a, s.model_b
    from {{ ref('stg_similarities') }} s
    join run r on r.method is null or (s.method = r.method and s.metric = r.metric)
),
population as (
    select model_a as model_id from scored
    union
    select model_b from scored
    union
    select parent_id from inferred
    union
    select child_id from inferred
),
recorded as (
    -- a pair recorded under several relations counts once, under the first relation by name
    select e.parent_id, e.child_id, min(e.relation) as relation
    from {{ ref('stg_model_edges') }} e
    where e.parent_id in (select model_id from population)
      and e.child_id in (select model_id from population)
      and e.parent_id <> e.child_id
    group by e.parent_id, e.child_id
),
checked as (
    select
        i.parent_id,
        i.child_id,
        case
            when same.parent_id is not null then 'correct'
            when flipped.parent_id is not null then 'reversed'
            else 'spurious'
        end as status,
        coalesce(same.relation, flipped.relation) as relation,
        true as is_inferred,
        i.score,
        i.direction_confidence,
        i.is_merge_parent,
        i.evidence,
        i.source,
        i.threshold,
        i.run_id
    from inferred i
    left join recorded same on same.parent_id = i.parent_id and same.child_id = i.child_id
    left join recorded flipped on flipped.parent_id = i.child_id and flipped.child_id = i.parent_id
),
missed as (
    select
        r.parent_id,
        r.child_id,
        'missed' as status,
        r.relation,
        false as is_inferred,
        cast(null as double) as score,
        cast(null as double) as direction_confidence,
        cast(null as boolean) as is_merge_parent,
        cast(null as varchar) as evidence,
        (select min(source) from run) as source,
        (select min(threshold) from inferred) as threshold,
        (select min(run_id) from inferred) as run_id
    from recorded r
    where not exists (
        select 1 from inferred i
        where (i.parent_id = r.parent_id and i.child_id = r.child_id)
           or (i.parent_id = r.child_id and i.child_id = r.parent_id)
    )
),
edges as (
    select * from checked
    union all
    select * from missed
)
select
    e.parent_id,
    e.child_id,
    p.display_name as parent_name,
    c.display_name as child_name,
    p.family as parent_family,
    c.family as child_family,
    e.status,
    e.relation,
    e.is_inferred,
    e.score,
    e.direction_confidence,
    e.is_merge_parent,
    e.evidence,
    e.source,
    e.threshold,
    e.run_id
from edges e
left join {{ ref('stg_models') }} p on p.model_id = e.parent_id
left join {{ ref('stg_models') }} c on c.model_id = e.child_id
