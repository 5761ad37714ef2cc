-- One row per unordered pair x method x metric x config_hash, with both models'
-- registry facts, the category and the lineage relation of the pair.
with sims as (
    select * from {{ ref('stg_similarities') }}
),
models as (
    select * from {{ ref('stg_models') }}
),
lineage as (
    select ancestor_id as x, descendant_id as y, derivation_type, depth from {{ ref('int_lineage_pairs') }}
    union all
    select descendant_id as x, ancestor_id as y, derivation_type, depth from {{ ref('int_lineage_pairs') }}
)
select
    s.method,
    s.metric,
    s.config_hash,
    s.model_a,
    s.model_b,
    s.similarity,
    a.display_name as display_name_a,
    b.display_name as display_name_b,
    a.family as family_a,
    b.family as family_b,
    a.model_type as type_a,
    b.model_type as type_b,
    case when a.family = b.family then 'intrafamily' else 'interfamily' end as category,
    coalesce(l.derivation_type, case when a.family = b.family then 'same_family' else 'unrelated' end)
        as relation,
    l.depth as lineage_depth,
    (a.family = b.family or l.derivation_type is not null) as is_related
from sims s
join models a on a.model_id = s.model_a
join models b on b.model_id = s.model_b
left join lineage l on l.x = s.model_a and l.y = s.model_b
