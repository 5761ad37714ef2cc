select
    cast(model_id as varchar) as model_id,
    cast(source as varchar) as source,
    cast(field as varchar) as field,
    cast(raw_value as varchar) as raw_value,
    cast(message as varchar) as message,
    cast(level as varchar) as level,
    ingested_at
from {{ source('lake', 'config_validation_issues') }}
