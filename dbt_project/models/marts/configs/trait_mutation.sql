-- Trait mutation along lineage edges (the AI-ecosystem paper's measure): per edge and trait,
-- (|union| - |intersection|) / |union| of the parent's and child's trait sets, over edges where both
-- ends report a non-empty set.
with edges as (
    select parent_id, child_id, relation from {{ ref('stg_model_edges') }}
),

trait_sets as (
    select model_id, trait, list_distinct(trait_values) as trait_values
    from (
        unpivot (select model_id, license, languages, pipeline_tag, library from {{ ref('stg_model_traits') }})
        on license, languages, pipeline_tag, library into name trait value trait_values
    )
    where len(list_distinct(trait_values)) > 0
),

edge_rates as (
    select
        e.relation,
        p.trait,
        len(list_distinct(list_concat(p.trait_values, c.trait_values))) as n_union,
        len(list_intersect(p.trait_values, c.trait_values)) as n_intersection
    from edges as e
    join trait_sets as p on p.model_id = e.parent_id
    join trait_sets as c on c.model_id = e.child_id and c.trait = p.trait
),

rates as (
    select trait, coalesce(relation, 'all') as relation,
           count(*) as n_edges,
           avg((n_union - n_intersection) / n_union) as mean_mutation_rate,
           avg(case when n_union > n_intersection then 1.0 else 0.0 end) as share_changed
    from edge_rates
    group by grouping sets ((trait, relation), (trait))
),

grid as (
    select t.trait, r.relation
    from (values ('license'), ('languages'), ('pipeline_tag'), ('library')) as t(trait)
    cross join (select distinct relation from edges union all select 'all') as r
)

select g.trait, g.relation, coalesce(r.n_edges, 0) as n_edges, r.mean_mutation_rate, r.share_changed
from grid as g
left join rates as r on r.trait = g.trait and r.relation = g.relation
