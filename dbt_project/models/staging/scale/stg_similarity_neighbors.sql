select
    cast(method as varchar) as method,
    cast(metric as varchar) as metric,
    cast(config_hash as varchar) as config_hash,
    cast(model_id as varchar) as model_id,
    cast(rank as integer) as rank,
    cast(neighbor_id as varchar) as neighbor_id,
    cast(similarity as double) as similarity,
    cast(exact as boolean) as exact,
    cast(population_size as bigint) as population_size,
    cast(run_id as varchar) as run_id
from {{ source('lake_scale', 'similarity_neighbors') }}
