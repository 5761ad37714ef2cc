-- Groups of models that share an architecture: byte-identical configs (same config_hash), or the same
-- values of all 18 features (unknown counted as a value) among configs that know at least
-- var('duplicate_min_features') of them, so two configs that only name the same model_type do not match.
with configs as (
    select c.*, m.family
    from {{ ref('stg_model_configs') }} as c
    left join {{ ref('stg_models') }} as m on m.model_id = c.model_id
),

keyed as (
    select 'config_hash' as match_kind, config_hash as group_key, model_id, family, model_type
    from configs
    union all
    select
        'feature_vector',
        md5(concat_ws('|'
            {%- for f in config_features() %}, coalesce(cast({{ f }} as varchar), '<null>'){% endfor %})),
        model_id, family, model_type
    from configs
    where n_features >= {{ var('duplicate_min_features') }}
)

select
    match_kind,
    group_key,
    count(*) as n_models,
    list_sort(list(model_id)) as model_ids,
    count(distinct family) as n_families,
    list_sort(list(distinct model_type) filter (where model_type is not null)) as archs
from keyed
group by match_kind, group_key
having count(*) >= 2
