-- One row per unordered pair x method x metric x config_hash, with both models'
-- registry facts, the category and the lineage relation of the pair (relation 'sibling':
-- a recorded same-recipe pair that is not derived, counted among the unrelated pairs).
--
-- in_common_set: both models belong to the common model set, so marts that compare
-- methods or metrics (provenance_quality) rank them on one population. An
-- "experiment" is one (method, metric, config_hash) with at least one pair of
-- registered models here; a model's experiments are those where it has a pair.
--   var common_set_scope = 'all' (default): the common set is the models present in
--     EVERY experiment of the lake, so any two rows of provenance_quality compare the
--     same models (the README's "which method x metric is best").
--   var common_set_scope = 'method_config': per (method, config_hash), the models present
--     for every metric of it (compares metrics within a method; a stale config with fewer
--     models then no longer shrinks the other methods' set).
-- Every experiment holds all pairs among its models (tests/singular/pair_counts_match_model_counts),
-- so the common pairs are the same pairs in every experiment of a scope.
{% set per_method = var('common_set_scope', 'all') == 'method_config' %}
{% if var('common_set_scope', 'all') not in ['all', 'method_config'] %}
    {{ exceptions.raise_compiler_error("var common_set_scope must be 'all' or 'method_config', got '"
                                       ~ var('common_set_scope') ~ "'") }}
{% endif %}
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
),
registered as (
    select s.*
    from sims s
    semi join models a on a.model_id = s.model_a
    semi join models b on b.model_id = s.model_b
),
experiment_models as (
    select method, metric, config_hash, model_a as model_id from registered
    union
    select method, metric, config_hash, model_b from registered
),
experiments as (
    select {{ 'method, config_hash,' if per_method }} count(distinct (method, metric, config_hash)) as n_experiments
    from experiment_models
    {{ 'group by method, config_hash' if per_method }}
),
model_counts as (
    select {{ 'method, config_hash,' if per_method }} model_id, count(*) as n_experiments
    from experiment_models
    group by all
),
common_models as (
    select {{ 'm.method, m.config_hash,' if per_method }} m.model_id
    from model_counts m
    join experiments x
        on {{ 'x.method = m.method and x.config_hash = m.config_hash' if per_method else 'true' }}
    where m.n_experiments = x.n_experiments
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
    -- recorded lineage wins; a recorded sibling pair (same recipe, not derived) is unrelated
    coalesce(l.derivation_type, case when sib.model_a is not null then 'sibling'
                                     when a.family = b.family then 'same_family' else 'unrelated' end)
        as relation,
    l.depth as lineage_depth,
    (l.derivation_type is not null or (a.family = b.family and sib.model_a is null)) as is_related,
    (ca.model_id is not null and cb.model_id is not null) as in_common_set
from sims s
join models a on a.model_id = s.model_a
join models b on b.model_id = s.model_b
left join lineage l on l.x = s.model_a and l.y = s.model_b
left join {{ ref('stg_model_siblings') }} sib
    on sib.model_a = least(s.model_a, s.model_b) and sib.model_b = greatest(s.model_a, s.model_b)
left join common_models ca
    on ca.model_id = s.model_a {{ 'and ca.method = s.method and ca.config_hash = s.config_hash' if per_method }}
left join common_models cb
    on cb.model_id = s.model_b {{ 'and cb.method = s.method and cb.config_hash = s.config_hash' if per_method }}
