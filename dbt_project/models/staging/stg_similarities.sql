select
    cast(model_a as varchar) as model_a,
    cast(model_b as varchar) as model_b,
    cast(method as varchar) as method,
    cast(metric as varchar) as metric,
    cast(config_hash as varchar) as config_hash,
    cast(similarity as double) as similarity
from {{ source('lake', 'similarities') }}
