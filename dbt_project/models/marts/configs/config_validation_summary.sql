-- What went wrong in config ingestion, per source and field, with one example to show.
with issues as (
    select *,
        row_number() over (partition by source, field order by model_id, message) as example_rank
    from {{ ref('stg_config_validation_issues') }}
)

select
    source,
    field,
    count(*) as n_issues,
    count(distinct model_id) as n_models,
    max(model_id) filter (where example_rank = 1) as example_model_id,
    max(raw_value) filter (where example_rank = 1) as example_raw_value,
    max(message) filter (where example_rank = 1) as example_message
from issues
group by source, field
