select
    cast(model_id as varchar) as model_id,
    cast(method as varchar) as method,
    cast(config_hash as varchar) as config_hash,
    config_json,
    cast(dim as integer) as dim,
    device,
    dtype,
    cast(seconds as double) as seconds,
    run_id,
    created_at
from {{ source('lake', 'fingerprints') }}
