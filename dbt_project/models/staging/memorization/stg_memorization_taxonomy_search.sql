select
    cast(model_id as varchar) as model_id,
    cast(corpus as varchar) as corpus,
    cast(step as bigint) as step,
    cast(description as varchar) as description,
    cast(score as double) as score,
    cast(metric as varchar) as metric
from {{ source('lake', 'memorization_taxonomy_search') }}
