select
    cast(model_a as varchar) as model_a,
    cast(model_b as varchar) as model_b,
    cast(family_a as varchar) as family_a,
    cast(family_b as varchar) as family_b,
    cast(relation as varchar) as relation,
    cast(label as boolean) as label,
    cast(score_oof as double) as score_oof,
    cast(score_full as double) as score_full,
    features_json,
    cast(fit_id as varchar) as fit_id,
    fitted_at,
    cast(lineage_depth as bigint) as lineage_depth,
    cast(n_imputed as bigint) as n_imputed,
    cast(oof_excluded as varchar) as oof_excluded
from {{ source('lake', 'provenance_scores') }}
