-- Every pair scored by the current verdict fit, with display names, the recorded relation and
-- label, both scores, and the verdict at the fit's threshold (related iff score >= threshold).
with cur as (
    select fit_id, threshold, target_fpr from {{ ref('stg_provenance_model') }} where is_current
),
models as (
    select model_id, display_name, model_type from {{ ref('stg_models') }}
)
select
    s.model_a,
    s.model_b,
    a.display_name as display_name_a,
    b.display_name as display_name_b,
    s.family_a,
    s.family_b,
    a.model_type as type_a,
    b.model_type as type_b,
    s.relation,
    s.lineage_depth,
    s.label,
    s.score_oof,
    s.score_full,
    c.threshold,
    c.target_fpr,
    s.score_full >= c.threshold as related,
    case when s.score_full >= c.threshold then 'related' else 'unrelated' end as verdict,
    s.score_oof >= c.threshold as related_oof,
    (s.score_oof >= c.threshold) = s.label as correct_oof,
    s.n_imputed,
    s.oof_excluded,
    s.features_json,
    s.fit_id,
    s.fitted_at
from {{ ref('stg_provenance_scores') }} s
join cur c on c.fit_id = s.fit_id
left join models a on a.model_id = s.model_a
left join models b on b.model_id = s.model_b
